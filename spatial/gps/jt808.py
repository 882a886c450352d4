"""JT/T 808 (2011, 2013 and 2019): the frames of vehicle terminals sold in China.

A frame is ``0x7E``, a header, a body, an XOR checksum, ``0x7E``; inside, ``0x7E`` is sent
as ``0x7D 0x02`` and ``0x7D`` as ``0x7D 0x01``. The header holds the message id, the body
length and flags (encryption, split message, 2019 version), for 2019 a protocol version
byte, the terminal's phone number in BCD (6 bytes, or 10 in 2019) and a serial number.

This module only turns bytes into :class:`Frame` and positions, and replies into bytes:
no socket, no database. :class:`Splitter` cuts a TCP stream into frames (junk between
frames is skipped and counted), :func:`parse` checks and unescapes one, :func:`locations`
reads a location report (``0x0200``) or a batch (``0x0704``), :func:`reply` builds the
platform's answers (``0x8001`` general response, ``0x8100`` registration response).

Written by hand: no maintained Python library decodes JT/T 808 (Traccar's decoder is
Java); the standard's layout is short and fixed, and each field here is checked.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field

FLAG, ESCAPE = 0x7E, 0x7D
LOCATION, BATCH = 0x0200, 0x0704
REGISTER, AUTHENTICATE, HEARTBEAT = 0x0100, 0x0102, 0x0002
GENERAL_RESPONSE, REGISTER_RESPONSE = 0x8001, 0x8100
OK, FAILED, BAD_MESSAGE, UNSUPPORTED = 0, 1, 2, 3
"""Results of a general response (``0x8001``)."""
NO_SUCH_TERMINAL = 4
"""The registration result for a phone number the platform does not know."""
MAX_FRAME = 2048
"""Bytes between two flags: the standard's body is at most 1023 bytes, escaped twice."""
CHINA = dt.timezone(dt.timedelta(hours=8))
"""Terminals send local time in GMT+8 (BCD ``YYMMDDhhmmss``)."""


class FrameError(ValueError):
    """A frame that cannot be read; ``reason`` is ``malformed`` or ``checksum``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class Frame:
    """One message from a terminal, unescaped and checked."""

    msg_id: int
    phone: str
    """The BCD digits as sent (12, or 20 in 2019)."""
    serial: int
    body: bytes
    version: int | None = None
    """The 2019 protocol version byte; None for 2011/2013."""
    packet: tuple[int, int] | None = None
    """(total, index) of a split message."""

    @property
    def terminal(self) -> str:
        """The phone number without leading zeros: how terminals are registered."""
        return self.phone.lstrip("0") or "0"


@dataclass
class Position:
    """A location report's fields (``0x0200``)."""

    time: dt.datetime
    lat: float
    lon: float
    altitude: int
    speed_kmh: float
    course: int
    alarm: int
    status: int
    extra: dict[str, int] = field(default_factory=dict)

    @property
    def fixed(self) -> bool:
        """Status bit 1: the terminal has a position fix."""
        return bool(self.status & 0x2)


def escape(data: bytes) -> bytes:
    """The bytes as sent between the flags."""
    return data.replace(b"\x7d", b"\x7d\x01").replace(b"\x7e", b"\x7d\x02")


def unescape(data: bytes) -> bytes:
    """The bytes as meant (raises :class:`FrameError` on a stray escape byte)."""
    out = bytearray()
    it = iter(data)
    for byte in it:
        if byte != ESCAPE:
            out.append(byte)
            continue
        following = next(it, None)
        if following not in (0x01, 0x02):
            raise FrameError("malformed", f"0x7D followed by {following!r}, not 0x01 or 0x02")
        out.append(ESCAPE if following == 0x01 else FLAG)
    return bytes(out)


def checksum(data: bytes) -> int:
    """The XOR of every byte."""
    value = 0
    for byte in data:
        value ^= byte
    return value


def _bcd(data: bytes) -> str:
    digits = data.hex()
    if not digits.isdigit():
        raise FrameError("malformed", f"BCD {data.hex().upper()} holds a digit above 9")
    return digits


def parse(raw: bytes, *, check: bool = True) -> Frame:
    """A frame's content (between the flags, still escaped), checked (without the
    checksum when ``check`` is False: to answer a frame whose checksum failed).

    Raises:
        FrameError: ``checksum`` when the XOR does not match; ``malformed`` for a bad
            escape, a short header or a body length that does not match.
    """
    data = unescape(raw)
    if len(data) < 13:
        raise FrameError("malformed", f"{len(data)} bytes: shorter than a header")
    if check and checksum(data[:-1]) != data[-1]:
        raise FrameError("checksum", f"checksum {data[-1]:02X}, computed {checksum(data[:-1]):02X}")
    data = data[:-1]
    msg_id, props = int.from_bytes(data[0:2]), int.from_bytes(data[2:4])
    length, split, v2019 = props & 0x3FF, bool(props & 0x2000), bool(props & 0x4000)
    if props & 0x1C00:
        raise FrameError("malformed", "an encrypted body (RSA) is not supported")
    at, version = 4, None
    if v2019:
        version, at = data[4], 5
    digits = 10 if v2019 else 6
    phone = _bcd(data[at : at + digits])
    at += digits
    serial = int.from_bytes(data[at : at + 2])
    at += 2
    packet = None
    if split:
        packet = (int.from_bytes(data[at : at + 2]), int.from_bytes(data[at + 2 : at + 4]))
        at += 4
    body = data[at:]
    if len(body) != length:
        raise FrameError(
            "malformed", f"the header says {length} body bytes, the frame has {len(body)}"
        )
    return Frame(msg_id, phone, serial, body, version, packet)


def _position(body: bytes) -> Position:
    if len(body) < 28:
        raise FrameError("malformed", f"a location of {len(body)} bytes, under 28")
    alarm, status, lat, lon = (int.from_bytes(body[i : i + 4]) for i in (0, 4, 8, 12))
    altitude = int.from_bytes(body[16:18], signed=True)
    speed, course = int.from_bytes(body[18:20]), int.from_bytes(body[20:22])
    stamp = _bcd(body[22:28])
    try:
        local = dt.datetime.strptime(stamp, "%y%m%d%H%M%S").replace(tzinfo=CHINA)
    except ValueError:
        raise FrameError("malformed", f"time {stamp} is not YYMMDDhhmmss") from None
    extra: dict[str, int] = {}
    at = 28
    while at + 2 <= len(body):
        item, size = body[at], body[at + 1]
        value = body[at + 2 : at + 2 + size]
        if len(value) < size:
            raise FrameError("malformed", f"extra item 0x{item:02X} runs past the body")
        if item == 0x01 and size == 4:
            extra["mileage_m"] = int.from_bytes(value) * 100
        elif item == 0x30 and size == 1:
            extra["rssi"] = value[0]
        elif item == 0x31 and size == 1:
            extra["satellites"] = value[0]
        at += 2 + size
    return Position(
        time=local.astimezone(dt.UTC),
        lat=lat / 1e6 * (-1 if status & 0x4 else 1),
        lon=lon / 1e6 * (-1 if status & 0x8 else 1),
        altitude=altitude, speed_kmh=speed / 10, course=course, alarm=alarm, status=status,
        extra=extra,
    )  # fmt: skip


def locations(frame: Frame) -> list[Position]:
    """The positions of a location report (one) or a batch upload (its items).

    Raises:
        FrameError: ``malformed`` when a position's fields do not fit its bytes.
    """
    if frame.msg_id == LOCATION:
        return [_position(frame.body)]
    if frame.msg_id != BATCH:
        return []
    if len(frame.body) < 3:
        raise FrameError("malformed", "a batch shorter than its count")
    count, at = int.from_bytes(frame.body[0:2]), 3
    found: list[Position] = []
    for _ in range(count):
        size = int.from_bytes(frame.body[at : at + 2])
        item = frame.body[at + 2 : at + 2 + size]
        if size == 0 or len(item) < size:
            raise FrameError("malformed", f"batch item {len(found) + 1} runs past the body")
        found.append(_position(item))
        at += 2 + size
    return found


def reply(frame: Frame, msg_id: int, body: bytes, serial: int) -> bytes:
    """The platform's message ``msg_id`` to the terminal of ``frame``, framed and escaped,
    in the frame's protocol version."""
    props = len(body) | (0x4000 if frame.version is not None else 0)
    header = msg_id.to_bytes(2) + props.to_bytes(2)
    if frame.version is not None:
        header += bytes([frame.version])
    header += bytes.fromhex(frame.phone) + (serial & 0xFFFF).to_bytes(2)
    data = header + body
    return bytes([FLAG]) + escape(data + bytes([checksum(data)])) + bytes([FLAG])


def general_response(frame: Frame, result: int, serial: int) -> bytes:
    """``0x8001``: the platform's answer to ``frame`` (``OK`` once its data is stored)."""
    body = frame.serial.to_bytes(2) + frame.msg_id.to_bytes(2) + bytes([result])
    return reply(frame, GENERAL_RESPONSE, body, serial)


def register_response(frame: Frame, result: int, code: str, serial: int) -> bytes:
    """``0x8100``: the answer to a registration, with the authentication code on success."""
    body = frame.serial.to_bytes(2) + bytes([result]) + (code.encode() if result == OK else b"")
    return reply(frame, REGISTER_RESPONSE, body, serial)


def auth_code(frame: Frame) -> str:
    """The code a terminal authenticates with (``0x0102``; 2019: length-prefixed)."""
    body = frame.body
    if frame.version is not None and body:
        body = body[1 : 1 + body[0]]
    return body.decode("ascii", errors="replace").rstrip("\x00")


@dataclass
class Splitter:
    """Cuts a byte stream into frames: the bytes between two flags. Bytes outside any
    frame, and frames longer than :data:`MAX_FRAME`, are skipped and counted."""

    pending: bytearray = field(default_factory=bytearray)
    skipped: int = 0
    """Junk bytes, and whole oversized frames, seen so far."""

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The complete frames ``data`` finishes (their content, without the flags)."""
        self.pending += data
        while True:
            start = self.pending.find(FLAG)
            if start < 0:
                self.skipped += len(self.pending)
                self.pending.clear()
                return
            if start:
                self.skipped += start
                del self.pending[:start]
            end = self.pending.find(FLAG, 1)
            if end < 0:
                if len(self.pending) > MAX_FRAME:
                    self.skipped += len(self.pending)
                    self.pending.clear()
                return
            content = bytes(self.pending[1:end])
            if not content:  # two flags in a row: the second opens the next frame
                del self.pending[:1]
                continue
            del self.pending[: end + 1]
            if len(content) > MAX_FRAME:
                self.skipped += len(content) + 2
                continue
            yield content
