"""The synchronous and the asyncio SDK have one API.

The control-plane calls of both are the same plans (``_ops``, ``_asset_ops``), the
sync data plane runs the async one on a loop thread; what stays written twice is the
list of public methods, and this pins it: for every pair, the same public names, the
same parameters (names, kinds, defaults), and a method is blocking on one side where
it is a coroutine (or async generator) on the other.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Set
from typing import Any

import pytest

from clutchcall.streams import (
    Asset,
    Assets,
    AsyncAsset,
    AsyncAssets,
    AsyncLiveInput,
    AsyncLiveInputs,
    AsyncPlaybackTokens,
    AsyncPlayer,
    AsyncPublisher,
    AsyncStreams,
    AsyncWebhooks,
    LiveInput,
    LiveInputs,
    PlaybackTokens,
    Player,
    Publisher,
    Streams,
    Webhooks,
)

# Where the two spellings differ by the language, not by the API.
RENAMED = {"close": "aclose", "__enter__": "__aenter__", "__exit__": "__aexit__"}
# A blocking call's own bound (the asyncio caller uses asyncio.wait_for / timeout()).
SYNC_ONLY_PARAMETERS = {"timeout"}
# Neither blocks on either side: they hand back an object, set a sink, read a counter.
PLAIN_ON_BOTH = {"publisher", "viewer", "attach", "statistics"}

PAIRS = [
    (Streams, AsyncStreams),
    (LiveInputs, AsyncLiveInputs),
    (LiveInput, AsyncLiveInput),
    (PlaybackTokens, AsyncPlaybackTokens),
    (Assets, AsyncAssets),
    (Asset, AsyncAsset),
    (Webhooks, AsyncWebhooks),
    (Player, AsyncPlayer),
    (Publisher, AsyncPublisher),
]


def public(cls: type) -> dict[str, Any]:
    names = {n for n in dir(cls) if not n.startswith("_")}
    names |= {n for n in ("__enter__", "__exit__", "__aenter__", "__aexit__") if hasattr(cls, n)}
    return {n: inspect.getattr_static(cls, n) for n in names}


def parameters(fn: Callable[..., Any], drop: Set[str] = frozenset()) -> list[tuple[Any, ...]]:
    return [
        (p.name, p.kind, p.default)
        for p in inspect.signature(fn).parameters.values()
        if p.name not in drop
    ]


def awaitable(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)


def check_pair(sync: type, aio: type) -> None:
    sync_api, aio_api = public(sync), public(aio)
    assert {RENAMED.get(n, n) for n in sync_api} == set(aio_api)
    for name in sync_api:
        if sync_api[name] is aio_api.get(name):  # one definition, inherited by both
            continue
        fn, afn = getattr(sync, name), getattr(aio, RENAMED.get(name, name))
        if not callable(fn) or not callable(afn):  # fields and properties
            assert not callable(fn) and not callable(afn), name
            continue
        assert not awaitable(fn), f"{sync.__name__}.{name} must block, not be awaited"
        if name in PLAIN_ON_BOTH:
            assert not awaitable(afn), f"{aio.__name__}.{name}"
        else:
            assert awaitable(afn), f"{aio.__name__}.{name} must be awaitable"
        if name != "__exit__":
            sync_only = SYNC_ONLY_PARAMETERS - set(inspect.signature(afn).parameters)
            assert parameters(fn, sync_only) == parameters(afn), name


@pytest.mark.parametrize(("sync", "aio"), PAIRS, ids=[s.__name__ for s, _ in PAIRS])
def test_same_public_names_parameters_and_blocking(sync: type, aio: type) -> None:
    check_pair(sync, aio)


def test_clients_are_built_the_same_way() -> None:
    drop = {"http_client"}  # httpx.Client vs httpx.AsyncClient
    assert parameters(Streams.__init__, drop) == parameters(AsyncStreams.__init__, drop)
    assert parameters(Streams.viewer) == parameters(AsyncStreams.viewer)
    sync, aio = Streams(base_url="http://x", api_key="k"), AsyncStreams(base_url="http://x")
    for name in ("live_inputs", "playback_tokens", "assets", "webhooks"):
        pair = (type(getattr(sync, name)), type(getattr(aio, name)))
        assert pair in PAIRS, name
    assert repr(sync).replace("Streams", "AsyncStreams") == repr(aio)


def test_the_pins_can_fail() -> None:
    """A drift like the one that was there (only the sync client had viewer()), a changed
    parameter and a blocking async method are each caught."""

    no_viewer = type("NoViewer", (), {k: v for k, v in vars(AsyncStreams).items() if k != "viewer"})
    with pytest.raises(AssertionError):
        check_pair(Streams, no_viewer)

    class OtherDefault(AsyncAssets):
        async def get(self, id: str = "as_x") -> AsyncAsset:  # type: ignore[override]
            raise NotImplementedError

    with pytest.raises(AssertionError, match="get"):
        check_pair(Assets, OtherDefault)

    class Blocking(AsyncWebhooks):
        def delete(self, id: str) -> None:  # type: ignore[override]
            raise NotImplementedError

    with pytest.raises(AssertionError, match="delete"):
        check_pair(Webhooks, Blocking)
