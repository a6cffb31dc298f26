"""JWKS for playback-token verification: from a URL, a file, or the ``clutchcall:jwks`` record.

:class:`JwksProvider` caches the key set and refreshes it when it is older than
``max_age`` or when a token names an unknown ``kid`` (at most once per
``min_refresh_interval``, so a flood of tokens with random kids cannot turn into
a flood of fetches), and at once whenever the control plane announces a key
rotation on ``clutchcall:signing-keys`` (:meth:`JwksProvider.follow`, run by
:meth:`JwksProvider.run` when there is a bus).  A failed refresh keeps the keys it had.  While NO key is
loaded (a node that started before the control plane published its keys) every
viewer would be refused anyway, so refreshes then only wait ``empty_refresh_interval``
(a small floor, 0.25 s by default) and :meth:`JwksProvider.run` retries on that
schedule too, backing off towards ``min_refresh_interval``.  A node may
run :meth:`JwksProvider.run` so that refreshes happen off the viewer's path.  Only EC P-256
signing keys (``kty`` EC, ``crv`` P-256, ``alg`` ES256 when given, ``use`` sig
when given) with a ``kid`` are kept; anything else in the document is skipped.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import httpx
import redis.exceptions
import structlog
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from jwt.exceptions import InvalidKeyError

from mesh.bus import Bus, BusUnavailable
from mesh.bus_contract import (
    JWKS_KEY,
    SIGNING_KEYS_CHANNEL,
    JwksRecord,
    MalformedLog,
    MalformedRecord,
    SigningKeysEvent,
)

__all__ = ["JWKS_CHANNEL", "JWKS_KEY", "JwksProvider", "JwksUnavailable", "parse_jwks"]

#: The control plane announces on ``JWKS_CHANNEL`` that the key set changed (a rotation):
#: refresh now (:class:`mesh.bus_contract.SigningKeysEvent`).
JWKS_CHANNEL: Final = SIGNING_KEYS_CHANNEL
MAX_JWKS_BYTES: Final = 1 << 20

_log = structlog.get_logger(__name__)


class JwksUnavailable(Exception):
    """No key set could be read and none is cached."""


def parse_jwks(document: Any) -> dict[str, ec.EllipticCurvePublicKey]:
    """``{kid: public key}`` of the usable ES256 keys; ``ValueError`` if it is no JWKS."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise ValueError("JWKS must be an object with a 'keys' list")
    keys: dict[str, ec.EllipticCurvePublicKey] = {}
    for jwk in document["keys"]:
        if not isinstance(jwk, Mapping):
            continue
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not kid:
            continue
        if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
            continue
        if jwk.get("alg", "ES256") != "ES256" or jwk.get("use", "sig") != "sig":
            continue
        public = {k: jwk[k] for k in ("kty", "crv", "x", "y") if k in jwk}  # never private parts
        try:
            key = ECAlgorithm.from_jwk(json.dumps(public))
        except (InvalidKeyError, ValueError, TypeError) as exc:
            _log.warning("jwks_bad_key", kid=kid, error=str(exc))
            continue
        if isinstance(key, ec.EllipticCurvePublicKey):
            keys[kid] = key
    return keys


class JwksProvider:
    """Cached key set from one source; see the module docstring.

    ``source`` is an ``http(s)://`` URL, ``bus`` (the ``clutchcall:jwks`` record,
    needs ``bus``), or a file path.
    """

    def __init__(
        self,
        source: str,
        *,
        bus: Bus | None = None,
        http: httpx.AsyncClient | None = None,
        max_age: float = 300.0,
        min_refresh_interval: float = 10.0,
        empty_refresh_interval: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if source == "bus" and bus is None:
            raise ValueError("JWKS source 'bus' needs a bus")
        self.source = source
        self._bus = bus
        self._http = http
        self._max_age = max_age
        self._min_refresh = min_refresh_interval
        self._empty_refresh = min(empty_refresh_interval, min_refresh_interval)
        self._clock = clock
        self._keys: dict[str, ec.EllipticCurvePublicKey] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0
        self.failures = 0

    def keys(self) -> Mapping[str, ec.EllipticCurvePublicKey]:
        return MappingProxyType(dict(self._keys))

    async def key(self, kid: str) -> ec.EllipticCurvePublicKey | None:
        """The key for ``kid`` (refreshing when stale or unknown); None if it does not exist.

        Raises :class:`JwksUnavailable` when no key set was ever loaded.
        """
        now = self._clock()
        stale = self._fetched_at is None or now - self._fetched_at >= self._max_age
        # Both a stale set and an unknown kid refresh at most once per interval, so a
        # dead JWKS server or a flood of random kids costs one fetch per interval.
        if stale or kid not in self._keys:
            if self._may_refresh(now):
                await self._refresh_once(now)
            elif self._lock.locked():
                # A refresh is under way (typically the background one at start-up):
                # its answer is the one this kid is waiting for, so wait for it
                # rather than refusing on the set it is about to replace.
                async with self._lock:
                    pass
        if self._fetched_at is None:
            raise JwksUnavailable(f"no JWKS could be loaded from {self.source}")
        return self._keys.get(kid)

    def _may_refresh(self, now: float) -> bool:
        interval = self._min_refresh if self._keys else self._empty_refresh
        return self._attempted_at is None or now - self._attempted_at >= interval

    async def _refresh_once(self, asked_at: float) -> None:
        async with self._lock:
            if self._attempted_at is not None and self._attempted_at >= asked_at:
                return  # someone refreshed while we waited for the lock
            await self._refresh()

    async def run(self) -> None:
        """Refresh in the background every ``max_age / 2`` so verification never waits,
        and on every rotation announced on the bus (:meth:`follow`), if there is one.

        While no key is loaded it retries after ``empty_refresh_interval``, doubling
        up to ``min_refresh_interval`` (or ``max_age / 2`` if that is shorter).
        """
        if self._bus is None:
            await self._poll()
            return
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._poll())
            tg.create_task(self.follow())

    async def follow(self) -> None:
        """Refresh at once on each ``clutchcall:signing-keys`` message (and after a bus
        resync, which may have hidden one), whatever ``min_refresh_interval`` says."""
        assert self._bus is not None
        malformed = MalformedLog()
        while True:
            try:
                async with self._bus.subscribe(JWKS_CHANNEL) as messages:
                    async for message in messages:
                        if not message.resync:
                            try:
                                event = SigningKeysEvent.decode(message.data)
                            except MalformedRecord as exc:
                                malformed.report("bad_signing_keys_message", "", exc)
                                continue
                            _log.debug("jwks_rotation_announced", kids=list(event.kids))
                        await self.refresh()
            except (BusUnavailable, redis.exceptions.RedisError, OSError) as exc:
                _log.warning("jwks_follow_failed", error=str(exc))
                await asyncio.sleep(1.0)

    async def _poll(self) -> None:
        backoff = self._empty_refresh
        while True:
            await self.refresh()
            if self._keys:
                backoff = self._empty_refresh
                await asyncio.sleep(self._max_age / 2)
            else:
                await asyncio.sleep(backoff)
                cap = max(0.01, min(self._min_refresh, self._max_age / 2))
                backoff = min(max(backoff * 2, 0.01), cap)

    async def refresh(self) -> None:
        """Fetch the key set now; on failure keep the cached keys (and log)."""
        async with self._lock:
            await self._refresh()

    async def _refresh(self) -> None:
        self._attempted_at = self._clock()
        self.fetches += 1
        try:
            document = await self._read()
            keys = parse_jwks(document)
        except (
            OSError,
            ValueError,
            httpx.HTTPError,
            BusUnavailable,
            redis.exceptions.RedisError,
        ) as exc:
            self.failures += 1
            _log.warning("jwks_refresh_failed", source=self.source, error=str(exc))
            return
        if set(keys) != set(self._keys):
            _log.info("jwks_loaded", source=self.source, kids=sorted(keys))
        self._keys = keys
        self._fetched_at = self._clock()

    async def _read(self) -> Any:
        if self.source.startswith(("http://", "https://")):
            return await self._read_url()
        if self.source == "bus":
            assert self._bus is not None
            record = await self._bus.get(JWKS_KEY)
            if record is None:
                raise ValueError(f"{JWKS_KEY} is not set")
            return JwksRecord.decode(record).encode()
        raw = await asyncio.to_thread(Path(self.source).read_bytes)
        if len(raw) > MAX_JWKS_BYTES:
            raise ValueError("JWKS file too large")
        return json.loads(raw)

    async def _read_url(self) -> Any:
        if self._http is not None:
            return await self._get(self._http)
        async with httpx.AsyncClient(timeout=5.0) as client:
            return await self._get(client)

    async def _get(self, client: httpx.AsyncClient) -> Any:
        response = await client.get(self.source, headers={"accept": "application/json"})
        response.raise_for_status()
        if len(response.content) > MAX_JWKS_BYTES:
            raise ValueError("JWKS document too large")
        return response.json()
