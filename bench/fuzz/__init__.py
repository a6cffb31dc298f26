"""Coverage-guided fuzzing of every parser that reads bytes from the network or a file.

One harness module per target (``bench/fuzz/<target>.py``) exposes
``TestOneInput(data: bytes)``, which feeds the bytes to the parser and lets only the
target's typed errors pass: any other exception propagates and is a finding.
:data:`TARGETS` names the packages atheris instruments for coverage; ``seeds()``
yields real inputs (bytes our encoders or ffmpeg produce) for the committed corpus
in ``bench/fuzz/corpus/<target>/``.

Run with ``python -m bench.fuzz <target|all> --runs N [--corpus DIR]`` (see
:mod:`bench.fuzz.__main__`).
"""

from __future__ import annotations

__all__ = ["CORPUS_ROOT", "TARGETS"]

from pathlib import Path

CORPUS_ROOT = Path(__file__).resolve().parent / "corpus"

#: target name (harness module ``bench.fuzz.<name>``) -> packages atheris instruments
TARGETS: dict[str, tuple[str, ...]] = {
    "moqt_control": ("moqt",),
    "moqt_stream": ("moqt",),
    "moqt_datagram": ("moqt",),
    "media_fmp4": ("media",),
    "media_catalog": ("media",),
    "rtmp_session": ("origin.rtmp",),
    "rtmp_amf0": ("origin.rtmp",),
    "rtmp_flv": ("origin.rtmp",),
    "mesh_jwt": ("mesh.auth", "jwt"),
    "vod_headers": ("vod._headers",),
    "vod_completion": ("vod.completion",),
}
