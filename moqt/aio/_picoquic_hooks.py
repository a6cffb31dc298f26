"""Two picoquic calls aiopquic 0.6.1 cannot make, run on picoquic's own network thread.

* A raw-QUIC close with the MoQT reason text: aiopquic's close hands picoquic only
  the error code (``picoquic_close``); ``picoquic_close_ex`` also takes the reason
  phrase of the CONNECTION_CLOSE frame.
* A new certificate for a running server: ``picoquic_refresh_tls_certificate``
  gives the connections that come after it the new chain and key (the established
  ones keep theirs).

Neither may be called from the event loop's thread: picoquic is single-threaded
(its network thread owns every connection, the wake-up list and the TLS context's
reference counts), so a call from another thread races with it. Both are therefore
run by that thread, from two small x86-64 stubs (:data:`_CODE`, source below)
that the aiopquic extension module's own calls pass through. Its calls to picoquic
functions go through its procedure linkage table (the library is linked with
partial RELRO and lazy binding, so the table's slots are plain writable pointers),
and two of those slots are pointed at the stubs:

* ``picoquic_close`` (aiopquic's close, on the network thread): the stub looks the
  connection up in a table of up to :data:`_TABLE_SLOTS` (connection, reason)
  pairs that :meth:`PicoquicHooks.set_close_reason` fills, empties the entry (used
  once) and tail-calls ``picoquic_close_ex`` with that reason (NULL for any other
  connection: exactly ``picoquic_close``).
* ``picoquic_get_next_wake_delay`` (called by picoquic's packet loop on every turn
  with its ``picoquic_quic_t``): when a refresh is pending for that very context,
  the stub calls ``picoquic_refresh_tls_certificate`` first, stores its result and
  clears the request; then it tail-calls the real function. :func:`refresh_certificate`
  posts the request and wakes the loop.

* ``picoquic_get_application_error`` (aiopquic asks it when the peer closed with an
  application code, before it tells Python): the stub copies the peer's reason
  phrase, which picoquic kept in the connection (``remote_error_reason``), into a
  free entry of a table of :data:`_REMOTE_SLOTS` (connection, text) pairs, then
  tail-calls the real function; :meth:`PicoquicHooks.take_remote_reason` reads it
  when the ConnectionTerminated event arrives (aiopquic's event carries no text).

No Python runs on the network thread (no GIL is taken there), so nothing here can
deadlock with aiopquic's own teardown. Writes are ordered so that the network
thread sees a complete entry: the reason pointer before the connection, the file
names before the context (x86-64 keeps stores in order). The reason texts are kept
alive well past their connection (picoquic resends CONNECTION_CLOSE from the same
pointer while closing).

Only for aiopquic 0.6.1 on x86-64 Linux (the receive stub reads a field of picoquic's
connection at the offset this build uses, checked in the build's own code), checked before anything is written
(the version, the architecture, the stubs' target symbols, ``picoquic_close`` being
``xor edx, edx; jmp picoquic_close_ex``, the slots found in the library's own
relocations and pointing into it); elsewhere :func:`hooks` is None and callers keep
the old behaviour (code without text, no certificate reload).

Stub source (GNU as, Intel syntax; ``as --64`` then ``objcopy -O binary -j .text``)::

    close_hook:                       # rdi = cnx, rsi = application error code
        endbr64
        lea rax, [rip + TABLE]
        mov ecx, 1024
    1:  cmp [rax], rdi
        je 2f
        add rax, 16
        dec ecx
        jnz 1b
        xor edx, edx                  # not ours: no reason, as picoquic_close
        jmp [rip + CLOSE_EX]
    2:  mov rdx, [rax + 8]            # the reason registered for this cnx,
        mov qword ptr [rax], 0        # used once
        jmp [rip + CLOSE_EX]
    wake_hook:                        # rdi = quic, rsi = current_time, rdx = delay_max
        endbr64
        mov rax, [rip + JOB_QUIC]
        cmp rax, rdi
        jne 3f
        push rdi                      # three pushes: the stack is 16-aligned for the call
        push rsi
        push rdx
        mov rsi, [rip + JOB_CERT]
        mov rdx, [rip + JOB_KEY]
        call [rip + REFRESH]          # picoquic_refresh_tls_certificate(quic, cert, key)
        mov [rip + JOB_RESULT], eax
        mov qword ptr [rip + JOB_QUIC], 0
        mov dword ptr [rip + JOB_DONE], 1
        pop rdx
        pop rsi
        pop rdi
    3:  jmp [rip + WAKE_ORIG]
    .org 0x1000                       # the data page (read-write): see _DATA_* below

The receive stub, in a mapping of its own (code page, then ``APPERR_ORIG`` at 0x1000
and the table at 0x1008, entries of 8 + 256 bytes)::

    app_error_hook:                   # rdi = cnx
        endbr64
        mov rsi, [rdi + 0x448]        # cnx->remote_error_reason (NUL-terminated)
        test rsi, rsi
        jz 9f
        lea r9, [rip + RTABLE]
        mov ecx, 256
    1:  xor eax, eax
        mov r10d, 1
        lock cmpxchg [r9], r10        # claim a free entry (0 -> 1: being written)
        je 2f
        add r9, 264
        dec ecx
        jnz 1b
        jmp 9f                        # full: this text is not kept
    2:  xor ecx, ecx
    3:  mov r8b, [rsi + rcx]
        mov [r9 + rcx + 8], r8b
        test r8b, r8b
        jz 4f
        inc ecx
        cmp ecx, 255
        jb 3b
        mov byte ptr [r9 + rcx + 8], 0
    4:  mov [r9], rdi                 # publish: the entry now belongs to cnx
    9:  jmp [rip + APPERR_ORIG]
"""

from __future__ import annotations

import asyncio
import ctypes
import mmap
import os
import platform
import struct
import sys
import time
from collections import deque
from importlib import metadata
from typing import Any, Final, NamedTuple

__all__ = ["PicoquicHooks", "hooks"]

_CODE: Final = bytes.fromhex(
    "f30f1efa488d0535100000b90004000048393874104883c010ffc975f331d2ff25db0f00"
    "00488b500848c70000000000ff25ca0f0000f30f1efa488b05d70f00004839f875355756"
    "52488b35d00f0000488b15d10f0000ff15b30f00008905cd0f000048c705aa0f00000000"
    "0000c705bc0f0000010000005a5e5fff25870f0000"
)
_RECEIVE_CODE: Final = bytes.fromhex(
    "f30f1efa488bb7480400004885f6744b4c8d0df10f0000b90001000031c041ba01000000"
    "f04d0fb111740d4981c108010000ffc975e6eb2331c9448a040e45884409084584c07410"
    "ffc181f9ff00000072e841c644090800498939ff259f0f0000"
)
_RECEIVE_ORIG: Final = 0x1000
_RECEIVE_TABLE: Final = 0x1008
_REMOTE_SLOTS: Final = 256
_REMOTE_ENTRY: Final = 8 + 256
_RECEIVE_MAPPING: Final = _RECEIVE_TABLE + _REMOTE_ENTRY * _REMOTE_SLOTS
#: picoquic_get_application_error in the supported build: ``mov rax, [rdi + 0x430]; ret``.
_APP_ERROR_CODE: Final = bytes.fromhex("488b8730040000c3")
#: ``cmp qword ptr [rbx + 0x448], 0`` in picoquic_decode_application_close_frame: the
#: offset in picoquic_cnx_t of the reason the receive stub reads.
_REMOTE_REASON_CHECK: Final = bytes.fromhex("4883bb4804000000")
_CLOSE_HOOK: Final = 0x00
_WAKE_HOOK: Final = 0x36
_PAGE: Final = 0x1000
# The data page, offsets from the start of the mapping (the stubs address them so).
_DATA_CLOSE_EX: Final = 0x1000
_DATA_WAKE_ORIG: Final = 0x1008
_DATA_REFRESH: Final = 0x1010
_DATA_JOB_QUIC: Final = 0x1018
_DATA_JOB_CERT: Final = 0x1020
_DATA_JOB_KEY: Final = 0x1028
_DATA_JOB_RESULT: Final = 0x1030
_DATA_JOB_DONE: Final = 0x1034
_DATA_TABLE: Final = 0x1040
_TABLE_SLOTS: Final = 1024
_MAPPING: Final = _DATA_TABLE + 16 * _TABLE_SLOTS
#: picoquic_close in the supported build: ``xor edx, edx`` then ``jmp rel32``.
_CLOSE_PROLOGUE: Final = bytes.fromhex("31d2e9")
_AIOPQUIC: Final = "0.6.1"
#: A close frame must fit one packet with room to spare.
MAX_REASON_BYTES: Final = 256
#: How long a reason text outlives its slot (picoquic may resend the close frame).
_KEEP_REASON: Final = 60.0
_PROT_READ, _PROT_WRITE, _PROT_EXEC = 1, 2, 4


def _reason_bytes(reason: str) -> bytes:
    data = reason.replace("\0", " ").encode("utf-8", errors="replace")
    if len(data) > MAX_REASON_BYTES:
        data = data[:MAX_REASON_BYTES].decode("utf-8", errors="ignore").encode("utf-8")
    return data + b"\0"


class _Slots(NamedTuple):
    """Where the extension module's calls to the three functions are bound."""

    close: int
    wake: int
    app_error: int


def _relocation_slots(path: str, bias: int, names: tuple[str, str, str]) -> _Slots | None:
    """The addresses of the jump slots of ``names`` in the loaded ELF ``path``."""
    with open(path, "rb") as file:
        data = file.read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:  # 64-bit little-endian
        return None
    shoff, shentsize, shnum = (
        struct.unpack_from("<Q", data, 0x28)[0],
        *struct.unpack_from("<HH", data, 0x3A),
    )
    sections = [
        struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)
    ]
    by_type = {s[1]: s for s in sections}  # SHT_DYNSYM = 11
    dynsym = by_type.get(11)
    if dynsym is None:
        return None
    dynstr = sections[dynsym[6]]
    found: dict[str, int] = {}
    for section in sections:
        if section[1] != 4 or section[6] != sections.index(dynsym):  # SHT_RELA on .dynsym
            continue
        for offset in range(section[4], section[4] + section[5], 24):
            r_offset, r_info = struct.unpack_from("<QQ", data, offset)
            if r_info & 0xFFFFFFFF != 7:  # R_X86_64_JUMP_SLOT
                continue
            name_at = struct.unpack_from("<I", data, dynsym[4] + (r_info >> 32) * 24)[0]
            start = dynstr[4] + name_at
            name = data[start : data.index(b"\0", start)].decode()
            if name in names:
                found[name] = bias + r_offset
    if set(found) != set(names):
        return None
    return _Slots(close=found[names[0]], wake=found[names[1]], app_error=found[names[2]])


def _symbol_value(path: str, name: str) -> int | None:
    """``st_value`` of a dynamic symbol (to turn its address into the load bias)."""
    with open(path, "rb") as file:
        data = file.read()
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [
        struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)
    ]
    for section in sections:
        if section[1] != 11:
            continue
        strings = sections[section[6]][4]
        for offset in range(section[4], section[4] + section[5], 24):
            st_name = struct.unpack_from("<I", data, offset)[0]
            start = strings + st_name
            if data[start : data.index(b"\0", start)] == name.encode():
                return int(struct.unpack_from("<Q", data, offset + 8)[0])
    return None


def _writable_mapping_of(address: int, path: str) -> bool:
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if start <= address < end:
                return "w" in fields[1] and fields[-1] == os.path.realpath(path)
    return False


def _inside_mapping_of(address: int, path: str) -> bool:
    real = os.path.realpath(path)
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if start <= address < end:
                return fields[-1] == real
    return False


class PicoquicHooks:
    """The installed stubs: reasons for closes, certificate refreshes (see the module)."""

    def __init__(self, base: int, mapping: mmap.mmap, receive: int, receiving: mmap.mmap) -> None:
        self._base = base
        self._mapping = mapping  # never unmapped: the stubs stay bound for the process
        self._receive = receive
        self._receiving = receiving
        self._live: set[int] = set()
        self._free = list(range(_TABLE_SLOTS - 1, -1, -1))
        self._slots: dict[int, tuple[int, ctypes.Array[ctypes.c_char]]] = {}
        self._kept: deque[tuple[float, object]] = deque()
        self._refresh_lock = asyncio.Lock()

    def _u64(self, offset: int) -> ctypes.c_uint64:
        return ctypes.c_uint64.from_address(self._base + offset)

    def _u32(self, offset: int) -> ctypes.c_uint32:
        return ctypes.c_uint32.from_address(self._base + offset)

    def _keep(self, value: object) -> None:
        now = time.monotonic()
        self._kept.append((now + _KEEP_REASON, value))
        while self._kept and self._kept[0][0] < now:
            self._kept.popleft()

    # --- close with reason -------------------------------------------------------------

    def set_close_reason(self, cnx: int, reason: str) -> bool:
        """The reason text picoquic puts in ``cnx``'s CONNECTION_CLOSE when aiopquic
        next closes it; False when the table is full (the close carries no text)."""
        if not cnx:
            return False
        if cnx in self._slots:
            self.forget(cnx)
        if not self._free:
            return False
        slot = self._free.pop()
        text = ctypes.create_string_buffer(_reason_bytes(reason))
        entry = _DATA_TABLE + 16 * slot
        self._u64(entry + 8).value = ctypes.addressof(text)
        self._u64(entry).value = cnx  # last: the entry is complete once it matches
        self._slots[cnx] = (slot, text)
        return True

    def forget(self, cnx: int) -> None:
        """``cnx`` is gone: free its slot (its text is kept a while longer)."""
        held = self._slots.pop(cnx, None)
        if held is None:
            return
        slot, text = held
        self._u64(_DATA_TABLE + 16 * slot).value = 0
        self._keep(text)
        self._free.append(slot)

    def track(self, cnx: int) -> None:
        """``cnx`` is a new raw connection of ours: drop what a freed connection at the
        same address left, and keep what the peer will close it with."""
        self.take_remote_reason(cnx)
        if cnx:
            self._live.add(cnx)

    def take_remote_reason(self, cnx: int) -> str | None:
        """The reason text the peer closed ``cnx`` with (None when it sent none or it
        was not kept); its entries are freed. Entries of connections nobody tracks
        (WebTransport ones, which close with a capsule) are swept when the table is
        half full."""
        self._live.discard(cnx)
        text: str | None = None
        used = 0
        for slot in range(_REMOTE_SLOTS):
            entry = self._receive + _RECEIVE_TABLE + _REMOTE_ENTRY * slot
            owner = ctypes.c_uint64.from_address(entry)
            value = owner.value
            if value and value == cnx:
                if text is None:
                    text = ctypes.string_at(entry + 8).decode("utf-8", errors="replace")
                owner.value = 0
            elif value:
                used += 1
        if used > _REMOTE_SLOTS // 2:
            for slot in range(_REMOTE_SLOTS):
                owner = ctypes.c_uint64.from_address(
                    self._receive + _RECEIVE_TABLE + _REMOTE_ENTRY * slot
                )
                if owner.value not in self._live and owner.value > 1:  # 1: being written
                    owner.value = 0
        return text

    @property
    def pending_reasons(self) -> int:
        return len(self._slots)

    # --- certificate refresh ------------------------------------------------------------

    async def refresh_certificate(
        self, quic: int, transport: Any, certificate: str, private_key: str, *, within: float = 5.0
    ) -> int:
        """Load ``certificate``/``private_key`` into the running ``picoquic_quic_t`` for
        the connections that come after (on its network thread); picoquic's result
        (0: done). ``TimeoutError`` when the loop did not turn within ``within``."""
        async with self._refresh_lock:
            cert = ctypes.create_string_buffer(os.fsencode(certificate))
            key = ctypes.create_string_buffer(os.fsencode(private_key))
            self._keep((cert, key))
            self._u64(_DATA_JOB_CERT).value = ctypes.addressof(cert)
            self._u64(_DATA_JOB_KEY).value = ctypes.addressof(key)
            self._u32(_DATA_JOB_DONE).value = 0
            self._u64(_DATA_JOB_QUIC).value = quic  # last: posts the request
            deadline = time.monotonic() + within
            try:
                while self._u32(_DATA_JOB_DONE).value == 0:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"picoquic's network thread did not turn in {within} s")
                    transport.wake_up()
                    await asyncio.sleep(0.01)
            finally:
                self._u64(_DATA_JOB_QUIC).value = 0  # withdrawn if not taken
            # The buffers stay referenced in _kept: a late turn may still read them.
            return ctypes.c_int32(self._u32(_DATA_JOB_RESULT).value).value


_hooks: PicoquicHooks | None = None
_tried = False
_why_not = ""


def why_not() -> str:
    """Why :func:`hooks` is None (empty when it is not)."""
    return _why_not


def hooks() -> PicoquicHooks | None:
    """The stubs, installed on first use; None where they cannot be (see the module)."""
    global _hooks, _tried, _why_not
    if _tried:
        return _hooks
    _tried = True
    try:
        _hooks = _install()
    except (
        OSError,
        ValueError,
        AttributeError,
        struct.error,
        metadata.PackageNotFoundError,
    ) as exc:
        _why_not = f"{type(exc).__name__}: {exc}"
        _hooks = None
    return _hooks


def _install() -> PicoquicHooks | None:
    global _why_not
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        _why_not = f"only on x86-64 Linux, not {sys.platform}/{platform.machine()}"
        return None
    if metadata.version("aiopquic") != _AIOPQUIC:
        _why_not = f"only for aiopquic {_AIOPQUIC}"
        return None
    from aiopquic._binding import _transport

    path = _transport.__file__
    lib = ctypes.CDLL(path)
    close = ctypes.cast(lib.picoquic_close, ctypes.c_void_p).value or 0
    close_ex = ctypes.cast(lib.picoquic_close_ex, ctypes.c_void_p).value or 0
    wake = ctypes.cast(lib.picoquic_get_next_wake_delay, ctypes.c_void_p).value or 0
    refresh = ctypes.cast(lib.picoquic_refresh_tls_certificate, ctypes.c_void_p).value or 0
    if ctypes.string_at(close, 3) != _CLOSE_PROLOGUE:
        _why_not = "picoquic_close is not the expected build"
        return None
    value = _symbol_value(path, "picoquic_close")
    if value is None:
        _why_not = "picoquic_close has no dynamic symbol"
        return None
    names = ("picoquic_close", "picoquic_get_next_wake_delay", "picoquic_get_application_error")
    slots = _relocation_slots(path, close - value, names)
    if slots is None:
        _why_not = "the extension module does not call them through its PLT"
        return None
    for slot in (slots.close, slots.wake, slots.app_error):
        bound = ctypes.c_uint64.from_address(slot).value
        if not _writable_mapping_of(slot, path) or not _inside_mapping_of(bound, path):
            _why_not = "a jump slot is read-only or already points elsewhere"
            return None
    mapping = mmap.mmap(-1, _MAPPING, prot=_PROT_READ | _PROT_WRITE)
    mapping[: len(_CODE)] = _CODE
    base = ctypes.addressof(ctypes.c_char.from_buffer(mapping))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    if libc.mprotect(base, _PAGE, _PROT_READ | _PROT_EXEC) != 0:
        _why_not = f"cannot make the stubs executable: {os.strerror(ctypes.get_errno())}"
        return None
    app_error = ctypes.cast(lib.picoquic_get_application_error, ctypes.c_void_p).value or 0
    decode = ctypes.cast(lib.picoquic_decode_application_close_frame, ctypes.c_void_p).value or 0
    if ctypes.string_at(
        app_error, len(_APP_ERROR_CODE)
    ) != _APP_ERROR_CODE or _REMOTE_REASON_CHECK not in ctypes.string_at(decode, 0x100):
        _why_not = "picoquic's connection layout is not the expected build's"
        return None
    receiving = mmap.mmap(-1, _RECEIVE_MAPPING, prot=_PROT_READ | _PROT_WRITE)
    receiving[: len(_RECEIVE_CODE)] = _RECEIVE_CODE
    receive = ctypes.addressof(ctypes.c_char.from_buffer(receiving))
    if libc.mprotect(receive, _PAGE, _PROT_READ | _PROT_EXEC) != 0:
        _why_not = f"cannot make the stubs executable: {os.strerror(ctypes.get_errno())}"
        return None
    ctypes.c_uint64.from_address(receive + _RECEIVE_ORIG).value = app_error
    installed = PicoquicHooks(base, mapping, receive, receiving)
    installed._u64(_DATA_CLOSE_EX).value = close_ex
    installed._u64(_DATA_WAKE_ORIG).value = wake
    installed._u64(_DATA_REFRESH).value = refresh
    # Bind the slots last (one aligned 8-byte store each): from here on every call of
    # the extension module to these two functions goes through the stubs.
    ctypes.c_uint64.from_address(slots.close).value = base + _CLOSE_HOOK
    ctypes.c_uint64.from_address(slots.wake).value = base + _WAKE_HOOK
    ctypes.c_uint64.from_address(slots.app_error).value = receive
    now_bound = [ctypes.c_uint64.from_address(slot).value for slot in slots]
    if now_bound != [base + _CLOSE_HOOK, base + _WAKE_HOOK, receive]:
        # A first call being bound by the dynamic linker at this very moment wrote over
        # a slot: put the functions back (each slot gets its own function) and give up.
        for slot, function in zip(slots, (close, wake, app_error), strict=True):
            ctypes.c_uint64.from_address(slot).value = function
        _why_not = "a jump slot changed while the stubs were bound"
        return None
    return installed
