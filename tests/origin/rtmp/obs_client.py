"""A raw RTMP publisher that behaves like OBS (librtmp), for tests.

Deliberately independent of ``origin.rtmp``: its own handshake, chunk writer
and reader, AMF0 codec and FLV file walker, so a bug shared by our server and
our codec cannot hide. It follows what OBS sends, in order:

handshake (simple), Set Chunk Size 4096, ``connect`` with an FMLE command object
(``app``, ``type: nonprivate``, ``flashVer: FMLE/3.0``, ``swfUrl``, ``tcUrl``),
``releaseStream``, ``FCPublish``, ``createStream`` (not waiting in between),
``publish <key> live`` once the stream id arrives, ``@setDataFrame onMetaData``,
then FLV audio/video tags with librtmp-style header compression, and at the end
``FCUnpublish`` + ``deleteStream``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FlvFileTag",
    "ObsLikeClient",
    "RtmpStatusError",
    "ServerMessage",
    "amf_encode_all",
    "read_flv_tags",
]


# ----------------------------------------------------------------------------- AMF0


class _Undefined:
    def __repr__(self) -> str:
        return "undefined"


UNDEFINED = _Undefined()


class Ecma(dict):  # type: ignore[type-arg]
    """Marks a dict to be encoded as an ECMA array."""


def amf_encode(value: Any) -> bytes:
    if value is None:
        return b"\x05"
    if value is UNDEFINED:
        return b"\x06"
    if isinstance(value, bool):
        return b"\x01" + (b"\x01" if value else b"\x00")
    if isinstance(value, int | float):
        return b"\x00" + struct.pack(">d", float(value))
    if isinstance(value, str):
        raw = value.encode()
        return b"\x02" + struct.pack(">H", len(raw)) + raw
    if isinstance(value, dict):
        body = b"".join(
            struct.pack(">H", len(k.encode())) + k.encode() + amf_encode(v)
            for k, v in value.items()
        )
        head = b"\x08" + struct.pack(">I", len(value)) if isinstance(value, Ecma) else b"\x03"
        return head + body + b"\x00\x00\x09"
    raise TypeError(type(value))


def amf_encode_all(*values: Any) -> bytes:
    return b"".join(amf_encode(v) for v in values)


def amf_decode_all(data: bytes) -> list[Any]:
    pos = 0

    def value() -> Any:
        nonlocal pos
        marker = data[pos]
        pos += 1
        if marker == 0x00:
            (v,) = struct.unpack_from(">d", data, pos)
            pos += 8
            return v
        if marker == 0x01:
            pos += 1
            return data[pos - 1] != 0
        if marker == 0x02:
            (n,) = struct.unpack_from(">H", data, pos)
            pos += 2 + n
            return data[pos - n : pos].decode()
        if marker in (0x03, 0x08):
            if marker == 0x08:
                pos += 4
            obj: dict[str, Any] = {}
            while True:
                (n,) = struct.unpack_from(">H", data, pos)
                pos += 2
                if n == 0 and data[pos] == 0x09:
                    pos += 1
                    return obj
                key = data[pos : pos + n].decode()
                pos += n
                obj[key] = value()
        if marker == 0x05:
            return None
        if marker == 0x06:
            return UNDEFINED
        raise ValueError(f"marker {marker:#x} not handled by the test client")

    out = []
    while pos < len(data):
        out.append(value())
    return out


# ----------------------------------------------------------------------------- FLV files


@dataclass(frozen=True)
class FlvFileTag:
    tag_type: int
    timestamp: int
    data: bytes


def read_flv_tags(blob: bytes) -> list[FlvFileTag]:
    assert blob[:3] == b"FLV"
    (offset,) = struct.unpack_from(">I", blob, 5)
    pos = offset + 4
    tags = []
    while pos + 11 <= len(blob):
        size = int.from_bytes(blob[pos + 1 : pos + 4], "big")
        ts = int.from_bytes(blob[pos + 4 : pos + 7], "big") | (blob[pos + 7] << 24)
        tags.append(FlvFileTag(blob[pos], ts, blob[pos + 11 : pos + 11 + size]))
        pos += 11 + size + 4
    return tags


# ----------------------------------------------------------------------------- chunks


@dataclass(frozen=True)
class ServerMessage:
    type_id: int
    stream_id: int
    timestamp: int
    payload: bytes

    def amf(self) -> list[Any]:
        return amf_decode_all(self.payload)


class RtmpStatusError(Exception):
    def __init__(self, info: dict[str, Any]) -> None:
        super().__init__(f"{info.get('code')}: {info.get('description')}")
        self.info = info


class ObsLikeClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.out_chunk_size = 128
        self.in_chunk_size = 128
        # csid -> (stream id, length, type, timestamp, timestamp field)
        self._prev_out: dict[int, tuple[int, int, int, int, int]] = {}
        self._in: dict[int, dict[str, Any]] = {}
        self._txn = 0
        self.received: list[ServerMessage] = []
        self.stream_id = 0
        self.bytes_in = 0

    @classmethod
    async def open(cls, host: str, port: int) -> ObsLikeClient:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    # -- raw writes

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def handshake(self) -> None:
        c1 = struct.pack(">II", int(time.monotonic() * 1000) & 0xFFFFFFFF, 0) + os.urandom(1528)
        await self.send_raw(b"\x03" + c1)
        s0s1s2 = await self.reader.readexactly(1 + 1536 + 1536)
        assert s0s1s2[0] == 3, "server answered a version other than 3"
        s1 = s0s1s2[1:1537]
        assert s0s1s2[1537:] == c1, "S2 does not echo C1"
        await self.send_raw(s1)  # C2 echoes S1

    def encode_message(self, csid: int, type_id: int, sid: int, ts: int, payload: bytes) -> bytes:
        """Header compression: type 0 first, then 1/2/3 against the previous message."""
        prev = self._prev_out.get(csid)
        fmt, field = 0, ts
        if prev is not None and prev[0] == sid and ts >= prev[3]:
            field = ts - prev[3]
            if (prev[1], prev[2]) != (len(payload), type_id):
                fmt = 1
            else:
                fmt = 3 if field == prev[4] else 2
        self._prev_out[csid] = (sid, len(payload), type_id, ts, field)
        ext = field >= 0xFFFFFF
        head = bytes([(fmt << 6) | csid])
        if fmt <= 2:
            head += (0xFFFFFF if ext else field).to_bytes(3, "big")
        if fmt <= 1:
            head += len(payload).to_bytes(3, "big") + bytes([type_id])
        if fmt == 0:
            head += struct.pack("<I", sid)
        ext_bytes = struct.pack(">I", field) if ext else b""
        out = head + ext_bytes + payload[: self.out_chunk_size]
        for off in range(self.out_chunk_size, len(payload), self.out_chunk_size):
            out += bytes([0xC0 | csid]) + ext_bytes + payload[off : off + self.out_chunk_size]
        return out

    async def send_message(
        self, csid: int, type_id: int, sid: int, ts: int, payload: bytes
    ) -> None:
        await self.send_raw(self.encode_message(csid, type_id, sid, ts, payload))

    async def set_chunk_size(self, size: int) -> None:
        await self.send_message(2, 1, 0, 0, struct.pack(">I", size))
        self.out_chunk_size = size

    async def invoke(
        self, name: str, *args: Any, sid: int = 0, csid: int = 3, txn: bool = True
    ) -> int:
        if txn:
            self._txn += 1
        number = self._txn if txn else 0
        payload = b"".join(amf_encode(v) for v in (name, number, *args))
        await self.send_message(csid, 20, sid, 0, payload)
        return number

    # -- reads

    async def _read_exact(self, n: int) -> bytes:
        data = await self.reader.readexactly(n)
        self.bytes_in += n
        return data

    async def read_message(self) -> ServerMessage:
        while True:
            first = (await self._read_exact(1))[0]
            fmt, csid = first >> 6, first & 0x3F
            if csid == 0:
                csid = 64 + (await self._read_exact(1))[0]
            elif csid == 1:
                b = await self._read_exact(2)
                csid = 64 + b[0] + b[1] * 256
            st = self._in.setdefault(
                csid,
                {"ts": 0, "delta": 0, "len": 0, "type": 0, "sid": 0, "ext": False, "buf": None},
            )
            if fmt <= 2:
                hdr = await self._read_exact((11, 7, 3)[fmt])
                field = int.from_bytes(hdr[:3], "big")
                if fmt <= 1:
                    st["len"] = int.from_bytes(hdr[3:6], "big")
                    st["type"] = hdr[6]
                if fmt == 0:
                    st["sid"] = struct.unpack("<I", hdr[7:11])[0]
                st["ext"] = field == 0xFFFFFF
                if st["ext"]:
                    field = struct.unpack(">I", await self._read_exact(4))[0]
                if fmt == 0:
                    st["ts"] = field
                else:
                    st["ts"] += field
                st["delta"] = field
            else:
                if st["ext"]:
                    await self._read_exact(4)
                if st["buf"] is None:
                    st["ts"] += st["delta"]
            if st["buf"] is None:
                st["buf"] = b""
            take = min(self.in_chunk_size, st["len"] - len(st["buf"]))
            st["buf"] += await self._read_exact(take)
            if len(st["buf"]) == st["len"]:
                msg = ServerMessage(st["type"], st["sid"], st["ts"], st["buf"])
                st["buf"] = None
                if msg.type_id == 1:
                    self.in_chunk_size = struct.unpack(">I", msg.payload)[0]
                elif msg.type_id == 6:  # Set Peer Bandwidth -> answer with our window (librtmp)
                    size = struct.unpack(">I", msg.payload[:4])[0]
                    await self.send_message(2, 5, 0, 0, struct.pack(">I", size))
                self.received.append(msg)
                return msg

    async def wait_command(self, *names: str, within: float = 5.0) -> list[Any]:
        async with asyncio.timeout(within):
            while True:
                msg = await self.read_message()
                if msg.type_id == 20:
                    values = msg.amf()
                    if values[0] in names:
                        return values

    # -- the OBS sequence

    async def connect(self, host: str, port: int, app: str) -> dict[str, Any]:
        await self.handshake()
        await self.set_chunk_size(4096)
        tc_url = f"rtmp://{host}:{port}/{app}"
        await self.invoke(
            "connect",
            {
                "app": app,
                "type": "nonprivate",
                "flashVer": "FMLE/3.0 (compatible; FMSc/1.0)",
                "swfUrl": tc_url,
                "tcUrl": tc_url,
            },
        )
        values = await self.wait_command("_result", "_error")
        if values[0] == "_error":
            raise RtmpStatusError(values[3])
        return values[3]

    async def start_publish(self, key: str) -> dict[str, Any]:
        await self.invoke("releaseStream", None, key)
        await self.invoke("FCPublish", None, key)
        create_txn = await self.invoke("createStream", None)
        while True:
            values = await self.wait_command("_result", "_error")
            if values[1] == create_txn:
                break
        self.stream_id = int(values[3])
        await self.invoke("publish", None, key, "live", sid=self.stream_id, csid=4)
        values = await self.wait_command("onStatus")
        info = values[3]
        if info.get("level") == "error":
            raise RtmpStatusError(info)
        return info

    async def send_metadata(self, metadata: dict[str, Any]) -> None:
        payload = (
            amf_encode("@setDataFrame") + amf_encode("onMetaData") + amf_encode(Ecma(metadata))
        )
        await self.send_message(4, 18, self.stream_id, 0, payload)

    async def send_tag(self, tag: FlvFileTag) -> None:
        csid = 6 if tag.tag_type == 9 else 4
        await self.send_message(csid, tag.tag_type, self.stream_id, tag.timestamp, tag.data)

    async def stop_publish(self, key: str) -> None:
        await self.invoke("FCUnpublish", None, key)
        await self.invoke("deleteStream", None, float(self.stream_id))

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass

    def abort(self) -> None:
        """Drop the TCP connection with a reset, like an encoder that crashed."""
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()

    async def wait_closed_by_server(self, within: float = 5.0) -> bool:
        """Read until EOF; True when the server closed the connection."""
        try:
            async with asyncio.timeout(within):
                while True:
                    if not await self.reader.read(65536):
                        return True
        except (ConnectionError, OSError):
            return True
        except TimeoutError:
            return False
