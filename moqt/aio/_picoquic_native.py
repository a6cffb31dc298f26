"""picoquic settings aiopquic does not expose, reached through its own exported symbols.

picoquic validates client addresses with Retry on its own: once more than a
threshold of handshakes are half-open (default 64) it answers every new Initial
without a token with a stateless Retry, and with "cookie mode" it always does.
aiopquic 0.6.1 exposes only the latter, for ``serve`` and not for
``serve_dispatch`` (raw QUIC + WebTransport on one port, what we run). The
functions are exported by aiopquic's extension module, so they are called here
with ctypes on the server's ``picoquic_quic_t``.

aiopquic keeps that pointer in a C field of ``TransportContext``. Its place is
found from the object's layout and checked before use: the type's weak-reference
slot sits where Cython puts it after the vtable pointer, the two pointers after it
are non-null, and the network-thread context's first field points back to the same
``picoquic_quic_t`` (picoquic's ``picoquic_network_thread_ctx_t``). Any mismatch
(another aiopquic build) gives ``None``, and the caller says what it cannot do.

The setters write plain integers (and, for the congestion controller, two pointers)
that picoquic's network thread reads when a new Initial arrives; they are called
right after the server starts. The congestion controller's option string is how
picoquic tunes a controller per context (its BBR's send quantum among them).
"""

from __future__ import annotations

import ctypes
from typing import Any, Final

__all__ = ["NativeQuic", "native_quic"]

# TransportContext (aiopquic 0.6.1, _transport.c): PyObject_HEAD, __pyx_vtab,
# __weakref__, _ctx, _quic, _thread_ctx, ...
_WEAKREF_OFFSET: Final = 24
_QUIC_OFFSET: Final = _WEAKREF_OFFSET + 16
_THREAD_OFFSET: Final = _WEAKREF_OFFSET + 24
#: A threshold no server reaches: picoquic never switches to Retry by itself.
NEVER: Final = 0xFFFFFFFF

_lib: Any = None


def _library() -> Any:
    global _lib
    if _lib is None:
        from aiopquic._binding import _transport

        lib = ctypes.CDLL(_transport.__file__)
        lib.picoquic_set_max_half_open_retry_threshold.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        lib.picoquic_set_max_half_open_retry_threshold.restype = None
        lib.picoquic_get_max_half_open_retry_threshold.argtypes = [ctypes.c_void_p]
        lib.picoquic_get_max_half_open_retry_threshold.restype = ctypes.c_uint32
        lib.picoquic_set_cookie_mode.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.picoquic_set_cookie_mode.restype = None
        lib.picoquic_current_number_connections.argtypes = [ctypes.c_void_p]
        lib.picoquic_current_number_connections.restype = ctypes.c_uint32
        lib.picoquic_get_congestion_algorithm.argtypes = [ctypes.c_char_p]
        lib.picoquic_get_congestion_algorithm.restype = ctypes.c_void_p
        lib.picoquic_set_default_congestion_algorithm_ex.argtypes = [
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_char_p,
        ]
        lib.picoquic_set_default_congestion_algorithm_ex.restype = None
        _lib = lib
    return _lib


class NativeQuic:
    """One server's ``picoquic_quic_t``, kept alive by its ``TransportContext``."""

    def __init__(self, context: Any, pointer: int) -> None:
        self._context = context  # owns the pointer: it lives as long as this object
        self._pointer = pointer
        # Each connection keeps a pointer to the option string it was created with (and
        # reads it again for a new path): every string given lives as long as the server.
        self._cc_options: dict[str, Any] = {}
        self.congestion_options = ""

    @property
    def pointer(self) -> int:
        """The ``picoquic_quic_t *`` (for calls made on picoquic's own thread)."""
        return self._pointer

    def set_retry(self, *, always: bool, threshold: int) -> None:
        """Retry for every new Initial (``always``), or once more than ``threshold``
        handshakes are half-open (:data:`NEVER`: not by itself)."""
        lib = _library()
        lib.picoquic_set_max_half_open_retry_threshold(self._pointer, threshold)
        lib.picoquic_set_cookie_mode(self._pointer, 1 if always else 0)

    def set_congestion_control(self, name: str, options: str) -> None:
        """The controller of the connections that come after, with picoquic's option string
        for it (``options``; for ``bbr``, ``Q0.02`` is a send quantum of 20 ms of its
        pacing rate; "": its defaults). Raises ``ValueError`` for a name picoquic does not
        register. Connections keep what they were created with."""
        lib = _library()
        algorithm = lib.picoquic_get_congestion_algorithm(name.encode())
        if not algorithm:
            raise ValueError(f"picoquic has no congestion controller {name!r}")
        if options and options not in self._cc_options:
            self._cc_options[options] = ctypes.create_string_buffer(options.encode())
        buffer = self._cc_options[options] if options else None
        lib.picoquic_set_default_congestion_algorithm_ex(self._pointer, algorithm, buffer)
        self.congestion_options = options

    @property
    def retry_threshold(self) -> int:
        return int(_library().picoquic_get_max_half_open_retry_threshold(self._pointer))

    @property
    def connections(self) -> int:
        """Connections picoquic holds state for, half-open handshakes included."""
        return int(_library().picoquic_current_number_connections(self._pointer))


def native_quic(context: Any) -> NativeQuic | None:
    """The ``picoquic_quic_t`` of a started aiopquic ``TransportContext``, or None."""
    kind = type(context)
    if (
        kind.__name__ != "TransportContext"
        or kind.__weakrefoffset__ != _WEAKREF_OFFSET
        or kind.__basicsize__ < _THREAD_OFFSET + 8
    ):
        return None
    base = id(context)
    quic = ctypes.c_void_p.from_address(base + _QUIC_OFFSET).value
    thread = ctypes.c_void_p.from_address(base + _THREAD_OFFSET).value
    if not quic or not thread or ctypes.c_void_p.from_address(thread).value != quic:
        return None
    return NativeQuic(context, quic)
