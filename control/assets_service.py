"""On-demand assets in the control plane (docs/vod.md), mixed into ControlService.

An asset (``as_``) is created with its upload capability (``up_`` + 256 random bits,
stored only as its SHA-256) and its playback id (``pb_``). The upload URL drives it
``waiting_upload -> uploading -> processing``; the packaging queue's events take it
to ``ready`` (or ``errored``), and ``asset.ready`` / ``asset.errored`` events go to
every event sink (webhooks).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from control.assets_models import AssetOut
from control.errors import Problem, not_found
from control.ids import new_id, sha256_hex, valid_id
from control.revocations import RevocationResult, RevocationsMixin
from control.store._assets import Asset, UploadRecord
from vod.delivery import AssetLocation
from vod.jobs import JobDone, JobEvent, JobFailed, JobProgress
from vod.packaging import PackagingJob, PackagingResult
from vod.storage import FileStorage, Storage
from vod.uploads import UploadInfo

if TYPE_CHECKING:
    from control.service import PlaybackTicket
    from control.settings import ControlSettings
    from control.store import IdempotencyBinding, Repository

__all__ = ["AssetsMixin", "PackagingSubmitter", "new_upload_token"]

_log = structlog.get_logger("control.assets")


class PackagingSubmitter(Protocol):
    async def submit(self, job: PackagingJob) -> None: ...

    async def resubmit(self, job: PackagingJob) -> bool: ...


def new_upload_token() -> str:
    """``up_`` + 43 url-safe characters (256 random bits)."""
    return "up_" + secrets.token_urlsafe(32)


class AssetsMixin(RevocationsMixin):
    """Asset and upload methods of :class:`control.service.ControlService`."""

    repo: Repository
    settings: ControlSettings
    _clock: Callable[[], float]
    # The packaging queue (set by control.assets when the app is built).
    packaging: PackagingSubmitter | None = None
    _storage: Storage | None = None

    if TYPE_CHECKING:

        async def emit_event(self, org_id: str, event: str, data: dict[str, Any]) -> None: ...

        async def sign_ticket(
            self,
            org_id: str,
            *,
            resource_id: str,
            sub: str,
            namespace: str,
            ttl_seconds: int,
            url: Callable[[str], str],
        ) -> PlaybackTicket: ...

    @property
    def storage(self) -> Storage:
        if self._storage is None:
            self._storage = FileStorage(self.settings.data_dir)
        return self._storage

    async def _adb(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    def public_base(self, request_base: str | None = None) -> str:
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/")
        if request_base:
            return request_base.rstrip("/")
        return f"http://{self.settings.http}"

    def asset_out(self, asset: Asset, base: str | None = None) -> AssetOut:
        """The Asset JSON the API serves (and events carry)."""
        error = None
        if asset.status == "errored" and asset.error_code:
            error = {"code": asset.error_code, "message": asset.error_message or ""}
        playback_url = None
        if not asset.require_signed:
            playback_url = f"{self.public_base(base)}/vod/{asset.playback_id}/catalog.json"
        return AssetOut.model_validate(
            {
                "id": asset.id,
                "playback_id": asset.playback_id,
                "name": asset.name,
                "status": asset.status,
                "progress": asset.progress,
                "error": error,
                "size": asset.size,
                "duration": asset.duration,
                "renditions": asset.renditions,
                "require_signed_urls": asset.require_signed,
                "meta": asset.meta,
                "created_at": asset.created_at,
                "updated_at": asset.updated_at,
                "ready_at": asset.ready_at,
                "upload_expires_at": asset.upload_expires_at,
                "playback_url": playback_url,
            }
        )

    # -- the API ----------------------------------------------------------------------

    async def create_asset_upload(
        self,
        org_id: str,
        *,
        name: str,
        max_duration: float | None = None,
        expires_in: int = 3600,
        require_signed: bool = False,
        meta: dict[str, str] | None = None,
        size: int | None = None,
        answer: Callable[[str, Asset], IdempotencyBinding | None] | None = None,
    ) -> tuple[str, Asset]:
        """A new asset waiting for its upload; returns (upload token, asset).

        ``answer`` renders the request's answer before the insert: its binding (an
        Idempotency-Key's) is committed in the asset's own transaction."""
        if size is not None and size > self.settings.max_upload_bytes:
            raise Problem(
                413,
                "upload-too-large",
                f"size {size} is over the limit of {self.settings.max_upload_bytes} bytes",
            )
        now = self._clock()
        token = new_upload_token()
        asset = Asset(
            id=new_id("as", now=now),
            org_id=org_id,
            playback_id=new_id("pb", now=now),
            name=name,
            status="waiting_upload",
            progress=None if size is None else 0.0,
            error_code=None,
            error_message=None,
            size=size,
            duration=None,
            renditions=[],
            require_signed=require_signed,
            meta=dict(meta or {}),
            max_duration=max_duration,
            created_at=now,
            updated_at=now,
            ready_at=None,
            upload_expires_at=now + expires_in,
        )
        upload = UploadRecord(
            token_sha256=sha256_hex(token),
            asset_id=asset.id,
            org_id=org_id,
            length=size,
            length_deferred=False,
            expires_at=asset.upload_expires_at,
            completed_at=None,
            activity_at=now,
            created_at=now,
        )
        bound = None if answer is None else answer(token, asset)
        await self._adb(self.repo.insert_asset, asset, upload, bound)
        _log.info("asset_created", org=org_id, asset=asset.id, playback_id=asset.playback_id)
        return token, asset

    async def get_asset(self, org_id: str, asset_id: str) -> Asset:
        if not valid_id(asset_id, "as"):
            raise not_found("asset", asset_id[:64])
        asset: Asset | None = await self._adb(self.repo.get_asset, org_id, asset_id)
        if asset is None:
            raise not_found("asset", asset_id)
        return asset

    async def list_assets(
        self, org_id: str, *, limit: int, cursor: str | None
    ) -> tuple[list[Asset], str | None]:
        if cursor is not None and not valid_id(cursor, "as"):
            raise Problem(422, "validation", "cursor is not a value returned by this API")
        rows: list[Asset] = await self._adb(
            self.repo.list_assets, org_id, limit=limit + 1, before=cursor
        )
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, (rows[-1].id if more and rows else None)

    async def delete_asset(self, org_id: str, asset_id: str) -> None:
        """Delete the asset, its stored bytes and packaged files; its tokens are revoked.

        The row's deletion and the revocation happen together or (503) not at all; the
        files go once the row is gone."""
        stored = await self.get_asset(org_id, asset_id)
        async with self.revoking_sub(org_id, stored.playback_id):
            asset: Asset | None = await self._adb(self.repo.delete_asset, org_id, asset_id)
            if asset is None:
                raise not_found("asset", asset_id)
        await self._adb(self.storage.remove_asset, asset.id)
        _log.info("asset_deleted", org=org_id, asset=asset.id)

    async def mint_asset_playback(
        self, org_id: str, asset_id: str, ttl_seconds: int, base: str | None = None
    ) -> PlaybackTicket:
        asset = await self.get_asset(org_id, asset_id)
        root = self.public_base(base)
        return await self.sign_ticket(
            org_id,
            resource_id=asset.id,
            sub=asset.playback_id,
            namespace=asset.namespace,
            ttl_seconds=ttl_seconds,
            url=lambda token: f"{root}/vod/{asset.playback_id}/catalog.json?token={token}",
        )

    async def revoke_asset_playback(self, org_id: str, asset_id: str) -> RevocationResult:
        asset = await self.get_asset(org_id, asset_id)
        result = await self._revoke_sub(org_id, asset.playback_id)
        _log.info("asset_playback_revoked", org=org_id, asset=asset.id)
        return result

    async def asset_by_playback_id(self, playback_id: str) -> Asset | None:
        if not valid_id(playback_id, "pb"):
            return None
        asset: Asset | None = await self._adb(self.repo.asset_by_playback_id, playback_id)
        return asset

    # -- packaging --------------------------------------------------------------------

    def packaging_job(self, asset: Asset) -> PackagingJob:
        return PackagingJob(
            asset_id=asset.id,
            playback_id=asset.playback_id,
            namespace=asset.namespace,
            source=self.storage.upload_path(asset.id),
            output=self.storage.asset_dir(asset.id),
            max_duration_s=asset.max_duration,
        )

    async def _submit(self, asset: Asset) -> None:
        if self.packaging is None:
            _log.warning("packaging_queue_missing", asset=asset.id)
            return
        await self.packaging.submit(self.packaging_job(asset))

    async def recover_packaging(self) -> int:
        """At start-up: submit again the jobs a stopped control plane may have lost.

        Every ``processing`` asset (and one whose upload was recorded complete but never
        left ``uploading``) is resubmitted; the queue skips one still queued (Redis).
        Returns how many were submitted.
        """
        if self.packaging is None:
            return 0
        count = 0
        for asset in await self._adb(self.repo.assets_to_package, self._clock()):
            if await self.packaging.resubmit(self.packaging_job(asset)):
                count += 1
                _log.info("packaging_resubmitted", asset=asset.id)
        return count

    async def _set_asset(self, asset_id: str, **fields: Any) -> Asset | None:
        asset: Asset | None = await self._adb(
            self.repo.update_asset, asset_id, self._clock(), **fields
        )
        return asset

    async def asset_progress(self, asset_id: str, percent: float) -> None:
        await self._set_asset(asset_id, progress=round(max(0.0, min(100.0, percent)), 2))

    async def asset_ready(self, asset_id: str, result: PackagingResult) -> None:
        before: Asset | None = await self._adb(self.repo.asset_by_id, asset_id)
        if before is not None and before.status == "ready":
            _log.info("asset_already_ready", asset=asset_id)  # packaged twice: one event
            return
        renditions = [
            {"name": r.name, "width": r.width, "height": r.height, "bitrate": r.bitrate,
             "codec": r.codec}
            for r in result.renditions
        ]  # fmt: skip
        asset = await self._set_asset(
            asset_id,
            status="ready",
            progress=100.0,
            duration=result.duration_s,
            renditions=renditions,
            ready_at=self._clock(),
            error_code=None,
            error_message=None,
        )
        if asset is not None:
            _log.info("asset_ready", asset=asset_id, duration=result.duration_s)
            await self.emit_event(asset.org_id, "asset.ready", self._event(asset))

    async def asset_errored(self, asset_id: str, code: str, message: str) -> None:
        asset = await self._set_asset(
            asset_id, status="errored", progress=None, error_code=code, error_message=message
        )
        if asset is not None:
            _log.info("asset_errored", asset=asset_id, code=code)
            await self.emit_event(asset.org_id, "asset.errored", self._event(asset))

    def _event(self, asset: Asset) -> dict[str, Any]:
        data: dict[str, Any] = self.asset_out(asset).model_dump(mode="json")
        data["event_id"] = f"asset.{asset.status}:{asset.id}:{round(asset.updated_at, 3)}"
        return data

    async def on_packaging_event(self, event: JobEvent) -> None:
        """Apply a packaging queue event (progress, ready, errored) to its asset."""
        if isinstance(event, JobDone):
            await self.asset_ready(event.asset_id, event.result)
        elif isinstance(event, JobFailed):
            await self.asset_errored(event.asset_id, event.code, event.message)
        elif isinstance(event, JobProgress):
            asset: Asset | None = await self._adb(self.repo.asset_by_id, event.asset_id)
            if asset is not None and asset.status == "processing":
                await self.asset_progress(event.asset_id, event.percent)

    async def vod_location(self, playback_id: str) -> AssetLocation | None:
        """Where a ready asset's packaged files are, for ``/vod/<pb_id>/`` delivery."""
        asset = await self.asset_by_playback_id(playback_id)
        if asset is None or asset.status != "ready":
            return None
        return AssetLocation(
            dir=self.storage.asset_dir(asset.id),
            org_id=asset.org_id,
            playback_id=asset.playback_id,
            require_signed=asset.require_signed,
        )

    # -- the upload URL's backend (vod.uploads.UploadBackend) ----------------------------

    def _info(self, up: UploadRecord, asset: Asset) -> UploadInfo:
        return UploadInfo(
            asset_id=up.asset_id,
            playback_id=asset.playback_id,
            org_id=up.org_id,
            length=up.length,
            deferred=up.length_deferred,
            expires_at=up.expires_at,
            completed=up.completed_at is not None,
            activity_at=up.activity_at,
            status=asset.status,
        )

    async def find_upload(self, token: str) -> UploadInfo | None:
        up: UploadRecord | None = await self._adb(self.repo.upload_by_token, sha256_hex(token))
        return None if up is None else await self._with_asset(up)

    async def _with_asset(self, up: UploadRecord) -> UploadInfo | None:
        asset: Asset | None = await self._adb(self.repo.asset_by_id, up.asset_id)
        return None if asset is None else self._info(up, asset)

    async def upload_of_asset(self, asset_id: str) -> UploadInfo | None:
        up: UploadRecord | None = await self._adb(self.repo.upload_of_asset, asset_id)
        return None if up is None else await self._with_asset(up)

    async def open_uploads(self) -> list[UploadInfo]:
        out = []
        for up in await self._adb(self.repo.open_uploads):
            info = await self._with_asset(up)
            if info is not None:
                out.append(info)
        return out

    async def create_upload(
        self, org_id: str, *, name: str, length: int | None, meta: dict[str, str]
    ) -> tuple[str, UploadInfo]:
        token, asset = await self.create_asset_upload(org_id, name=name, meta=meta, size=length)
        info = await self.upload_of_asset(asset.id)
        assert info is not None
        return token, info

    async def bind_length(self, asset_id: str, length: int | None, deferred: bool) -> None:
        await self._adb(self.repo.update_upload, asset_id, length=length, length_deferred=deferred)
        if length is not None:
            await self._set_asset(asset_id, size=length)

    async def record_progress(self, asset_id: str, offset: int, length: int | None) -> None:
        await self._adb(self.repo.update_upload, asset_id, activity_at=self._clock())
        progress = None if not length else round(100.0 * offset / length, 2)
        fields: dict[str, Any] = {"progress": progress}
        if offset > 0:
            fields["status"] = "uploading"
        asset = await self._adb(self.repo.asset_by_id, asset_id)
        if asset is not None and asset.status in ("waiting_upload", "uploading"):
            await self._set_asset(asset_id, **fields)

    async def complete_upload(self, asset_id: str, size: int) -> None:
        if not await self._adb(self.repo.complete_upload, asset_id, self._clock(), size):
            return
        asset: Asset | None = await self._adb(self.repo.asset_by_id, asset_id)
        if asset is None:
            return
        _log.info("upload_complete", asset=asset_id, size=size)
        await self._submit(asset)

    async def expire_upload(self, asset_id: str) -> None:
        await self._adb(self.storage.remove_upload, asset_id)
        asset: Asset | None = await self._adb(self.repo.asset_by_id, asset_id)
        if asset is None or asset.status not in ("waiting_upload", "uploading"):
            return
        await self.asset_errored(
            asset_id, "upload_expired", "The upload URL expired before the file was complete."
        )

    async def cancel_upload(self, asset_id: str) -> None:
        stored: Asset | None = await self._adb(self.repo.asset_by_id, asset_id)
        if stored is not None:
            async with self.revoking_sub(stored.org_id, stored.playback_id):
                await self._adb(self.repo.delete_asset, None, asset_id)
            _log.info("upload_cancelled", asset=asset_id)
        await self._adb(self.storage.remove_asset, asset_id)
