"""Where ``clutchcall up`` and ``clutchcall admin`` keep their state, outside the working tree.

The state directory is ``$XDG_STATE_HOME/clutchcall`` (``~/.local/state/clutchcall``
when unset; ``platformdirs`` picks the platform's equivalent elsewhere), or
``--state-dir``. It holds the shared default database (``clutchcall.sqlite3``: what
``up`` serves is what ``admin`` edits), the stack's self-signed certificate
(``certs/``, reused while it has more than a day left, so ``CLUTCHCALL_CAFILE`` stays
valid across restarts) and on-demand uploads and assets (``data/``).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import platformdirs

__all__ = ["default_db", "stack_certificate", "state_dir"]

_RENEW_BEFORE = datetime.timedelta(days=1)


def state_dir(override: str | Path | None = None) -> Path:
    """The state directory (created, mode 0700)."""
    path = Path(override) if override else platformdirs.user_state_path("clutchcall")
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def default_db(override: str | Path | None = None) -> str:
    """``CLUTCHCALL_CONTROL_DB``, else the state directory's database."""
    env = os.environ.get("CLUTCHCALL_CONTROL_DB")
    if env:
        return env
    return f"sqlite:///{state_dir(override) / 'clutchcall.sqlite3'}"


def _still_valid(cert: Path, names: Sequence[str]) -> bool:
    from cryptography import x509

    try:
        parsed = x509.load_pem_x509_certificate(cert.read_bytes())
        alt = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    have = {str(n) for n in alt.get_values_for_type(x509.DNSName)}
    have |= {str(ip) for ip in alt.get_values_for_type(x509.IPAddress)}
    left = parsed.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    return left > _RENEW_BEFORE and set(names) <= have


def stack_certificate(directory: Path, names: Sequence[str]) -> tuple[Path, Path]:
    """``directory/certs/{cert,key}.pem``: reused while valid, else made anew. Written
    into a fresh directory and renamed into place, so stacks starting together never
    read a half-written pair."""
    from moqt.aio import write_self_signed

    final = directory / "certs"
    cert, key = final / "cert.pem", final / "key.pem"
    if key.exists() and _still_valid(cert, names):
        return cert, key
    fresh = Path(tempfile.mkdtemp(prefix=".certs-", dir=directory))
    write_self_signed(fresh, list(names))
    if key.exists() and _still_valid(cert, names):  # another stack made one meanwhile
        shutil.rmtree(fresh, ignore_errors=True)
        return cert, key
    old = directory / f".certs-old-{os.getpid()}"
    with contextlib.suppress(OSError):
        final.rename(old)  # the expired pair (if another stack has not moved it already)
    try:
        fresh.rename(final)
    except OSError:  # another stack won the race: use its pair
        shutil.rmtree(fresh, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
    return cert, key
