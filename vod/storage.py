"""Where on-demand bytes live: one small interface, the local filesystem by default.

Layout under the data directory (docs/vod.md):

- ``uploads/<as_id>.bin``: the bytes received so far; its size is the upload offset.
- ``assets/<as_id>/``: the packaged asset, written as ``assets/.<as_id>.tmp-*/`` and
  renamed into place once whole (:meth:`Storage.staging_dir`, :meth:`Storage.publish`).

Every method is synchronous and may block on the disk: async callers run them in a
worker thread.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, Protocol

__all__ = ["FileStorage", "Storage"]


class Storage(Protocol):
    """The operations uploads and packaging need from a store of bytes."""

    def upload_path(self, asset_id: str) -> Path: ...

    def upload_size(self, asset_id: str) -> int:
        """Bytes received so far (0 when nothing was stored)."""
        ...

    def open_upload(self, asset_id: str) -> BinaryIO:
        """The upload's file opened for appending at its end (created when missing)."""
        ...

    def truncate_upload(self, asset_id: str, size: int) -> None: ...

    def remove_upload(self, asset_id: str) -> None: ...

    def asset_dir(self, asset_id: str) -> Path:
        """Where the packaged asset lives once published."""
        ...

    def staging_dir(self, asset_id: str) -> Path:
        """A fresh private directory to package into (same volume as :meth:`asset_dir`)."""
        ...

    def publish(self, staging: Path, asset_id: str) -> Path:
        """Move a staging directory into place atomically; returns :meth:`asset_dir`."""
        ...

    def remove_asset(self, asset_id: str) -> None:
        """Remove every byte of the asset: its upload, its package and staging leftovers."""
        ...


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileStorage:
    """:class:`Storage` on a local (or shared ReadWriteMany) directory."""

    def __init__(self, data_dir: str | Path) -> None:
        self.root = Path(data_dir)
        self.uploads = self.root / "uploads"
        self.assets = self.root / "assets"
        # Directories are made on first write, so building an app creates nothing on disk.

    @staticmethod
    def _check(asset_id: str) -> str:
        if not asset_id or "/" in asset_id or asset_id.startswith("."):
            raise ValueError(f"bad asset id {asset_id!r}")
        return asset_id

    def upload_path(self, asset_id: str) -> Path:
        return self.uploads / f"{self._check(asset_id)}.bin"

    def upload_size(self, asset_id: str) -> int:
        try:
            return self.upload_path(asset_id).stat().st_size
        except FileNotFoundError:
            return 0

    def open_upload(self, asset_id: str) -> BinaryIO:
        path = self.upload_path(asset_id)
        self.uploads.mkdir(parents=True, exist_ok=True)
        created = not path.exists()
        f = open(path, "ab")  # the caller closes it
        if created:
            _fsync_dir(self.uploads)
        return f

    def truncate_upload(self, asset_id: str, size: int) -> None:
        path = self.upload_path(asset_id)
        with open(path, "r+b") as f:
            f.truncate(size)
            f.flush()
            os.fsync(f.fileno())

    def remove_upload(self, asset_id: str) -> None:
        self.upload_path(asset_id).unlink(missing_ok=True)

    def asset_dir(self, asset_id: str) -> Path:
        return self.assets / self._check(asset_id)

    def staging_dir(self, asset_id: str) -> Path:
        self.assets.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{self._check(asset_id)}.tmp-", dir=self.assets))

    def publish(self, staging: Path, asset_id: str) -> Path:
        target = self.asset_dir(asset_id)
        if target.exists():
            shutil.rmtree(target)
        os.rename(staging, target)
        _fsync_dir(self.assets)
        return target

    def remove_asset(self, asset_id: str) -> None:
        self.remove_upload(asset_id)
        shutil.rmtree(self.asset_dir(asset_id), ignore_errors=True)
        if not self.assets.is_dir():
            return
        for leftover in self.assets.glob(f".{self._check(asset_id)}.tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)
