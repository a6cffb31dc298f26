"""Pin the public surface of the session layer: changing it is a decision, not an accident."""

from __future__ import annotations

import moqt
import moqt.events
import moqt.session


def test_session_exports() -> None:
    assert moqt.session.__all__ == [
        "FetchHandle",
        "RequestBlockedError",
        "Session",
        "SessionStatistics",
        "SubgroupHandle",
    ]
    for name in ("Session", "SubgroupHandle", "FetchHandle", "RequestBlockedError", "Location"):
        assert name in moqt.__all__ and hasattr(moqt, name)


def test_event_exports() -> None:
    assert sorted(moqt.events.__all__) == moqt.events.__all__
    assert set(moqt.events.__all__) == {
        "Event",
        "FetchAccepted",
        "FetchCancelled",
        "FetchRequested",
        "FetchStreamEnded",
        "FetchStreamReset",
        "GoawayReceived",
        "NamespaceAnnounced",
        "NamespaceWithdrawn",
        "ObjectReceived",
        "ObjectSource",
        "PublishAccepted",
        "PublishDoneReceived",
        "PublishNamespaceAccepted",
        "PublishNamespaceCancelled",
        "PublishNamespaceDone",
        "PublishNamespaceRequested",
        "PublishRequested",
        "RequestKind",
        "RequestRejected",
        "RequestsUnblocked",
        "SessionClosed",
        "SetupCompleted",
        "SubgroupStreamEnded",
        "SubgroupStreamOpened",
        "SubgroupStreamReset",
        "SubgroupStreamStopped",
        "SubscribeAccepted",
        "SubscribeNamespaceAccepted",
        "SubscribeNamespaceEnded",
        "SubscribeNamespaceRequested",
        "SubscribeRequested",
        "SubscriptionUpdated",
        "TrackStatusReceived",
        "TrackStatusRequested",
        "Unsubscribed",
        "UpdateAccepted",
    }
    for name in moqt.events.__all__:
        cls = getattr(moqt.events, name)
        if isinstance(cls, type) and issubclass(cls, moqt.events.Event):
            assert cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
            assert hasattr(cls, "__slots__")
