"""The encoder side of the RTMP ingest bench: a live ffmpeg encoder and a tag clock.

:class:`TagClock` is a pass-through TCP proxy between the encoder and the
origin's RTMP port. It forwards every byte unchanged and, on the encoder ->
origin direction, skips the handshake (C0+C1, C2: 1 + 1536 + 1536 bytes) and
feeds the chunk stream to :class:`origin.rtmp.ChunkReader`, noting for every
video message its RTMP timestamp (ms) and the wall-clock time its last byte
was read. The encoder (:func:`encoder_argv`) is ``ffmpeg -re`` on a lavfi
test pattern with ``libx264 -tune zerolatency`` (no B-frames, no lookahead), so a
frame leaves the encoder as soon as it is encoded and its RTMP timestamp is its
capture time on the source's timeline. :meth:`TagClock.anchor` maps that
timeline to the wall clock: ``min(read wall time - timestamp)`` over the video
tags, i.e. the capture time of timestamp 0 assuming the least-delayed frame was
encoded and sent instantly (on loopback the send takes microseconds), so a
capture time derived from it is the latest it can be - latencies measured from
it are lower bounds by at most that one frame's encode time (a few ms with ultrafast).

The origin rebases the FLV it feeds its ffmpeg to the first video keyframe
(``origin.rtmp_ingest``), and ffmpeg keeps that timeline (checked: group ``g``
starts at exactly ``g x group_duration``), so :meth:`TagClock.timeline_zero`
(the anchor plus that keyframe's timestamp) is the capture time of the ladder's
presentation time 0.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

from media.ffmpeg import ffmpeg_exe
from origin.rtmp import ChunkReader, MessageType, RtmpError

__all__ = ["TagClock", "encoder_argv"]

_HANDSHAKE_FROM_CLIENT = 1 + 1536 + 1536


def encoder_argv(url: str, seconds: float, *, height: int = 720, fps: int = 30) -> list[str]:
    """720p30 testsrc2 + sine, x264 ultrafast/zerolatency, 2 s GOP, AAC, to ``url`` as FLV.

    Paced in real time (``-re``, no initial burst). Observed with ffmpeg 9: the first
    frames leave ~0.5 s late (start-up), then every frame leaves within ~20 ms of
    ``anchor + timestamp`` - the steady state the anchor is taken from (the pacing
    clock itself starts before the first frame is read, so the anchor is not the
    process start and need not be).
    """
    width = height * 16 // 9
    return [
        ffmpeg_exe(), "-hide_banner", "-nostats", "-v", "error",
        "-re", "-readrate_initial_burst", "0",
        "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}",
        "-re", "-readrate_initial_burst", "0",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", str(seconds), "-map", "0:v", "-map", "1:a",
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", str(2 * fps),
        "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-f", "flv", url,
    ]  # fmt: skip


def _coded_keyframe(payload: bytes) -> bool:
    """An FLV video tag body holding a keyframe's coded picture (not a sequence header)."""
    if len(payload) < 2:
        return False
    if payload[0] & 0x80:  # enhanced RTMP: frame type, then packet type (1, 3: coded frames)
        return (payload[0] >> 4) & 0x07 == 1 and payload[0] & 0x0F in (1, 3)
    if payload[0] >> 4 != 1:
        return False
    return payload[0] & 0x0F != 7 or payload[1] == 1  # AVC: packet type 1 = NAL units


@dataclass
class TagClock:
    """``TagClock(("127.0.0.1", rtmp_port))``; point the encoder at :attr:`port`."""

    upstream: tuple[str, int]
    tags: list[tuple[int, float]] = field(default_factory=list)  # (video timestamp ms, wall)
    error: str | None = None
    first_keyframe: int | None = None  # RTMP timestamp (ms) of the first coded keyframe

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = [self._listener]
        self._thread = threading.Thread(target=self._accept, name="tag-clock", daemon=True)
        self._thread.start()

    def anchor(self) -> float:
        """Wall-clock capture time of RTMP timestamp 0 (see the module docstring)."""
        if not self.tags:
            raise RuntimeError(f"no video tag went through the proxy ({self.error or 'no error'})")
        return min(wall - ts / 1000 for ts, wall in self.tags)

    def send_delays(self, after_ms: int = 0) -> list[float]:
        """Seconds each video tag (RTMP time >= ``after_ms``) left after its nominal capture
        (``anchor + timestamp``): encode plus the FLV muxer's audio/video interleaving."""
        anchor = self.anchor()
        return [wall - ts / 1000 - anchor for ts, wall in self.tags if ts >= after_ms]

    def timeline_zero(self) -> float:
        """Wall-clock capture time of the origin ladder's presentation time 0."""
        if self.first_keyframe is None:
            raise RuntimeError("no video keyframe went through the proxy")
        return self.anchor() + self.first_keyframe / 1000

    def close(self) -> None:
        for sock in self._sockets:
            try:
                sock.close()
            except OSError:
                pass
        self._thread.join(timeout=5)

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except OSError:
            return
        server = socket.create_connection(self.upstream)
        self._sockets += [client, server]
        back = threading.Thread(target=self._pipe, args=(server, client), daemon=True)
        back.start()
        self._forward(client, server)
        back.join(timeout=5)

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _forward(self, src: socket.socket, dst: socket.socket) -> None:
        reader = ChunkReader()
        skip = _HANDSHAKE_FROM_CLIENT
        try:
            while data := src.recv(65536):
                wall = time.time()
                dst.sendall(data)
                if skip >= len(data):
                    skip -= len(data)
                    continue
                data, skip = data[skip:], 0
                if self.error is not None:
                    continue
                try:
                    messages = reader.receive_data(data)
                except RtmpError as exc:
                    self.error = f"chunk stream: {exc}"
                    continue
                for m in messages:
                    if m.type_id != MessageType.VIDEO:
                        continue
                    self.tags.append((m.timestamp, wall))
                    if self.first_keyframe is None and _coded_keyframe(m.payload):
                        self.first_keyframe = m.timestamp
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
