"""Handles for the data streams a :class:`~moqt.session.Session` sends on.

A handle is returned by ``Session.open_subgroup`` / ``Session.open_fetch_stream`` and
passed back to the write/end/reset methods.  The application only reads it; the
session owns its state.
"""

from __future__ import annotations

__all__ = ["FetchHandle", "SubgroupHandle"]


class SubgroupHandle:
    """One outgoing subgroup stream of a subscription we publish."""

    __slots__ = (
        "_closed",
        "_last_object_id",
        "extensions_present",
        "group_id",
        "publisher_priority",
        "request_id",
        "stream_id",
        "subgroup_id",
        "track_alias",
    )

    def __init__(
        self,
        *,
        stream_id: int,
        request_id: int,
        track_alias: int,
        group_id: int,
        subgroup_id: int,
        publisher_priority: int | None,
        extensions_present: bool,
    ) -> None:
        self.stream_id = stream_id
        self.request_id = request_id
        self.track_alias = track_alias
        self.group_id = group_id
        self.subgroup_id = subgroup_id
        self.publisher_priority = publisher_priority
        self.extensions_present = extensions_present
        self._last_object_id: int | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once ended, reset (by us, by STOP_SENDING, UNSUBSCRIBE or PUBLISH_DONE) or the session closed."""
        return self._closed

    @property
    def last_object_id(self) -> int | None:
        return self._last_object_id

    def __repr__(self) -> str:
        return (
            f"SubgroupHandle(stream_id={self.stream_id}, request_id={self.request_id}, "
            f"group={self.group_id}, subgroup={self.subgroup_id}, closed={self._closed})"
        )


class FetchHandle:
    """The outgoing stream answering one FETCH."""

    __slots__ = ("_closed", "_prev", "request_id", "stream_id")

    def __init__(self, *, stream_id: int, request_id: int) -> None:
        self.stream_id = stream_id
        self.request_id = request_id
        # (group, subgroup or None, object, priority) of the previous object, for ordering checks.
        self._prev: tuple[int, int | None, int, int] | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once ended, reset (by us, FETCH_CANCEL or STOP_SENDING) or the session closed."""
        return self._closed

    def __repr__(self) -> str:
        return f"FetchHandle(stream_id={self.stream_id}, request_id={self.request_id}, closed={self._closed})"
