"""JT/T 808 frames: the real terminal frames of ``../shared/data/gps`` (Traccar's decoder
tests) decoded to the positions Traccar asserts, and frames built here for what the
samples do not show: 2019 headers, escaping, southern and western positions, replies,
and every way a frame can be broken."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from spatial.gps import jt808
from spatial.gps.jt808 import FrameError, Splitter

SAMPLES = (
    Path(__file__).resolve().parent.parent.parent
    / "shared/data/gps/traccar_china_protocol_samples.txt"
)


def _samples() -> list[tuple[str, str, bytes]]:
    if not SAMPLES.is_file():
        pytest.skip(f"{SAMPLES} is absent (the shared test data is not beside the checkout)")
    found = []
    for line in SAMPLES.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].startswith("JT808"):
            found.append((parts[0], parts[1], bytes.fromhex(parts[2])))
    return found


def _frame(raw: bytes) -> jt808.Frame:
    [content] = list(Splitter().feed(raw))
    return jt808.parse(content)


def _build(msg_id: int, body: bytes, *, phone: str = "013511221122", serial: int = 7,
           version: int | None = None) -> bytes:  # fmt: skip
    props = len(body) | (0x4000 if version is not None else 0)
    header = (
        msg_id.to_bytes(2) + props.to_bytes(2) + (bytes([version]) if version is not None else b"")
    )
    data = header + bytes.fromhex(phone) + serial.to_bytes(2) + body
    return b"\x7e" + jt808.escape(data + bytes([jt808.checksum(data)])) + b"\x7e"


def _location(lat: float, lon: float, status: int = 0x3, when: str = "261207153000") -> bytes:
    return (b"\x00\x00\x00\x00" + status.to_bytes(4) + round(abs(lat) * 1e6).to_bytes(4)
            + round(abs(lon) * 1e6).to_bytes(4) + (12).to_bytes(2) + (605).to_bytes(2)
            + (90).to_bytes(2) + bytes.fromhex(when) + b"\x31\x01\x09")  # fmt: skip


def test_the_real_samples_decode() -> None:
    """Every sample decodes as Traccar's tests expect, but the first: its XOR is wrong
    (Traccar does not check it), so it is refused as a ``checksum`` reject."""
    samples = _samples()
    assert len(samples) == 8
    with pytest.raises(FrameError) as caught:
        _frame(samples[0][2])
    assert caught.value.reason == "checksum"
    for expect, kind, raw in samples[1:]:
        assert bool(jt808.locations(_frame(raw))) == (expect == "POSITION"), kind
    shenzhen = _frame(samples[1][2])
    [where] = jt808.locations(shenzhen)
    assert (shenzhen.msg_id, shenzhen.phone, shenzhen.terminal, shenzhen.serial) == (
        0x0200,
        "013833501744",
        "13833501744",
        25,
    )
    assert (where.lat, where.lon, where.fixed) == (22.6426, 114.032984, True)
    assert where.time == dt.datetime(2015, 8, 17, 23, 21, 21, tzinfo=dt.UTC)  # 07:21:21 GMT+8
    assert where.extra == {"mileage_m": 75_700}
    [brazil] = jt808.locations(_frame(samples[3][2]))
    assert (brazil.lat, brazil.lon) == (-19.591535, -46.912186)  # status bits 2 and 3
    batch = _frame(next(raw for _, kind, raw in samples if kind.startswith("JT808-batch")))
    positions = jt808.locations(batch)
    assert len(positions) == 8 and batch.msg_id == jt808.BATCH
    assert [p.time for p in positions] == sorted(p.time for p in positions)
    register = _frame(next(raw for _, kind, raw in samples if "register" in kind))
    auth = _frame(next(raw for _, kind, raw in samples if "auth" in kind))
    assert register.msg_id == jt808.REGISTER and auth.msg_id == jt808.AUTHENTICATE
    assert jt808.auth_code(auth) == "authentication"


def test_2019_headers_escapes_and_hemispheres() -> None:
    body = _location(-33.8688, -70.6693, status=0x3 | 0x4 | 0x8)
    raw = _build(jt808.LOCATION, body, phone="00000000013800138000", version=1)
    frame = _frame(raw)
    assert frame.version == 1 and frame.terminal == "13800138000"
    [where] = jt808.locations(frame)
    assert (where.lat, where.lon) == (-33.8688, -70.6693)
    assert where.speed_kmh == 60.5 and where.course == 90 and where.extra == {"satellites": 9}
    assert where.time == dt.datetime(2026, 12, 7, 7, 30, tzinfo=dt.UTC)
    # a serial of 0x7E7D and a body holding both flag bytes are escaped and come back
    tricky = _build(jt808.HEARTBEAT, b"", serial=0x7E7D)
    assert tricky.count(b"\x7e") == 2 and b"\x7d\x02" in tricky and b"\x7d\x01" in tricky
    assert _frame(tricky).serial == 0x7E7D


def test_replies_are_framed_for_the_terminal() -> None:
    frame = _frame(_build(jt808.REGISTER, b"\x00" * 37, serial=5))
    answer = _frame(jt808.register_response(frame, jt808.OK, "YF-AMB-01:5d1c", serial=1))
    assert (answer.msg_id, answer.phone, answer.serial) == (jt808.REGISTER_RESPONSE, frame.phone, 1)
    assert answer.body == b"\x00\x05\x00YF-AMB-01:5d1c"
    refused = _frame(jt808.register_response(frame, jt808.NO_SUCH_TERMINAL, "x", serial=2))
    assert refused.body == b"\x00\x05\x04"
    v2019 = _frame(
        _build(jt808.LOCATION, _location(23, 112), phone="0" * 9 + "13800138000", version=1)
    )
    ack = _frame(jt808.general_response(v2019, jt808.OK, serial=3))
    assert ack.version == 1 and ack.body == b"\x00\x07\x02\x00\x00"


@pytest.mark.parametrize(
    ("raw", "reason", "detail"),
    [
        (_build(jt808.HEARTBEAT, b"")[:-2] + b"\x00\x7e", "checksum", "checksum"),
        (b"\x7e\x00\x02\x00\x7e", "malformed", "shorter than a header"),
        (b"\x7e" + b"\x7d\x05" * 8 + b"\x7e", "malformed", "0x7D followed by"),
        (_build(jt808.LOCATION, b"\x00" * 10), "malformed", "under 28"),
        (
            _build(jt808.LOCATION, _location(23, 112, when="261399000000")),
            "malformed",
            "YYMMDDhhmmss",
        ),
        (_build(jt808.LOCATION, _location(23, 112, when="2612071530AA")), "malformed", "BCD"),
    ],
)
def test_broken_frames_say_why(raw: bytes, reason: str, detail: str) -> None:
    with pytest.raises(FrameError) as caught:
        jt808.locations(_frame(raw))
    assert caught.value.reason == reason and detail in str(caught.value)


def test_the_splitter_skips_junk_and_keeps_partial_frames() -> None:
    one, two = _build(jt808.HEARTBEAT, b""), _build(jt808.LOCATION, _location(23, 112))
    splitter = Splitter()
    got = list(splitter.feed(b"GET / HTTP/1.1\r\n" + one + two[:10]))
    assert len(got) == 1 and splitter.skipped == 16
    got += list(splitter.feed(two[10:] + b"\x00\x01"))
    assert [jt808.parse(c).msg_id for c in got] == [jt808.HEARTBEAT, jt808.LOCATION]
    assert splitter.skipped == 18
    assert list(splitter.feed(b"\x7e" + b"\x01" * (jt808.MAX_FRAME + 10))) == []
    assert splitter.pending == bytearray() and splitter.skipped > jt808.MAX_FRAME
