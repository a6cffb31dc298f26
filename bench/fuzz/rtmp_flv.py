"""FLV files and streams: ``FlvReader`` (header, tags, PreviousTagSize), script tags
(AMF0) and audio/video tag headers (legacy and Enhanced RTMP).

Byte 0 is the chunk size the stream is fed in (0: all at once). Allowed: FlvFormatError
and the other RtmpPeerError subclasses.
"""

from __future__ import annotations

from collections.abc import Iterator

from origin.rtmp.errors import RtmpPeerError
from origin.rtmp.flv import FlvReader, read_flv
from origin.rtmp.tags import TagType

__all__ = ["TestOneInput", "seeds"]


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    step = data[0] or len(data)
    body = data[1:]
    reader = FlvReader(max_tag_size=1 << 16)
    try:
        for i in range(0, len(body), step):
            for tag in reader.receive_data(body[i : i + step]):
                try:
                    if tag.tag_type == TagType.SCRIPT:
                        tag.script()
                    else:
                        media = tag.media()
                        _ = media.is_keyframe, media.is_sequence_header
                except RtmpPeerError:
                    pass
    except RtmpPeerError:
        pass
    try:
        read_flv(body)
    except RtmpPeerError:
        pass


def seeds() -> Iterator[bytes]:
    """An ffmpeg-made H.264 + AAC FLV and one written by our muxer."""
    import subprocess
    import tempfile
    from pathlib import Path

    import imageio_ffmpeg

    from origin.rtmp.flv import FlvMuxer
    from origin.rtmp.tags import MediaTag

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "a.flv"
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error"]
        cmd += ["-f", "lavfi", "-i", "testsrc2=size=32x32:rate=10:duration=0.3"]
        cmd += ["-f", "lavfi", "-i", "sine=sample_rate=8000:duration=0.3"]
        cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-g", "2", "-pix_fmt", "yuv420p"]
        cmd += ["-c:a", "aac", "-b:a", "16k", "-ac", "1", "-f", "flv", "-y", str(path)]
        subprocess.run(cmd, check=True, timeout=60)
        flv = path.read_bytes()
    yield b"\x00" + flv
    yield b"\x0b" + flv
    mux = FlvMuxer()
    ours = mux.header() + mux.metadata({"width": 32.0, "height": 32.0})
    ours += mux.tag(MediaTag(TagType.VIDEO, 0, bytes((0x17, 0, 0, 0, 0)) + bytes(20)))
    ours += mux.tag(MediaTag(TagType.AUDIO, 0, bytes((0xAF, 0, 0x12, 0x10))))
    yield b"\x00" + ours
