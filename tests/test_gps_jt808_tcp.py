"""The JT/T 808 receiver over a real socket, on the session database: real terminal frames
(``../shared/data/gps``) and frames built here, answered as the standard asks, positions
stored before they are acknowledged, junk and broken frames counted while the connection
stays up."""

from __future__ import annotations

import asyncio
import datetime as dt

import psycopg
import pytest
from gpsnet import query, running
from support import free_port, run_cli
from test_gps_jt808 import _build, _location, _samples

from spatial.gps import jt808
from spatial.gps.jt808 import Frame, Splitter
from spatial.gps.jt808_tcp import auth_code, serve_jt808
from spatial.gps.store import add_device
from spatial.gps.tcp import Backoff, TcpOptions
from spatial.settings import GpsSettings

SECRET = "test-secret-of-the-jt808-receiver"
FAST = TcpOptions(idle_timeout=5.0, pool_timeout=0.5, backoff=Backoff(0.1, 0.5))
TRUCK, BATCHER = "jt808-truck", "jt808-batcher"


@pytest.fixture(scope="module")
def url(database_url: str) -> str:
    """The session database with two terminals registered (the samples' numbers)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        add_device(conn, TRUCK, terminal="013833501744")
        add_device(conn, BATCHER, terminal="13567777777")
    return database_url


class Terminal:
    """A terminal's end of the connection: send frames, read the platform's answers."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.splitter = reader, writer, Splitter()
        self.waiting: list[Frame] = []

    async def ask(self, data: bytes) -> Frame:
        self.writer.write(data)
        await self.writer.drain()
        while not self.waiting:
            chunk = await asyncio.wait_for(self.reader.read(4096), 10)
            assert chunk, "the receiver closed the connection"
            self.waiting += [jt808.parse(c) for c in self.splitter.feed(chunk)]
        return self.waiting.pop(0)


def _result(answer: Frame) -> tuple[int, int, int]:
    """(answered serial, answered message id, result) of a general response."""
    body = answer.body
    return int.from_bytes(body[0:2]), int.from_bytes(body[2:4]), body[4]


def test_terminals_are_answered_and_their_positions_stored(url: str) -> None:
    samples = {kind: raw for _, kind, raw in _samples()}
    positions = [raw for _, kind, raw in _samples() if kind == "JT808"]
    port = free_port()

    async def body() -> None:
        terminal = Terminal(*await asyncio.open_connection("127.0.0.1", port))
        # an unknown terminal registers: "no such terminal"
        refused = await terminal.ask(samples["JT808-register(0x0100)"])
        assert refused.msg_id == jt808.REGISTER_RESPONSE and refused.body == b"\x00\x05\x04"
        # junk, then a real location report of a registered terminal: stored, then acknowledged
        stored = await terminal.ask(b"\x00\x01garbage\r\n" + positions[1])
        assert (stored.msg_id, _result(stored)) == (jt808.GENERAL_RESPONSE, (25, 0x0200, 0))
        assert len(query(url, "SELECT 1 FROM gps.positions WHERE device_id = %s", TRUCK)) == 1
        # the sample with a wrong XOR is a truncated frame: counted, not answered (its
        # header cannot be trusted); a whole frame with a wrong XOR: "message error"
        phone = "013833501744"
        flipped = _build(jt808.HEARTBEAT, b"", phone=phone, serial=29)
        flipped = flipped[:-2] + bytes([flipped[-2] ^ 0xFF]) + flipped[-1:]
        broken = await terminal.ask(positions[0] + flipped)
        assert _result(broken) == (29, jt808.HEARTBEAT, jt808.BAD_MESSAGE)
        # registration, authentication with the code given, a wrong code, a heartbeat,
        # a message the platform does not handle
        registered = await terminal.ask(
            _build(jt808.REGISTER, b"\x00" * 37, phone=phone, serial=30)
        )
        code = registered.body[3:].decode()
        assert registered.body[:3] == b"\x00\x1e\x00" and code == auth_code(SECRET, "13833501744")
        good = await terminal.ask(_build(jt808.AUTHENTICATE, code.encode(), phone=phone, serial=31))
        bad = await terminal.ask(_build(jt808.AUTHENTICATE, b"guess", phone=phone, serial=32))
        beat = await terminal.ask(_build(jt808.HEARTBEAT, b"", phone=phone, serial=33))
        other = await terminal.ask(_build(0x0900, b"\x01", phone=phone, serial=34))
        assert [_result(a)[2] for a in (good, bad, beat, other)] == [0, 1, 0, 3]
        # a position without a fix, and a batch of eight from another terminal
        unfixed = _build(jt808.LOCATION, _location(23.0, 112.0, status=0x1), phone=phone, serial=35)
        assert _result(await terminal.ask(unfixed))[2] == 0
        batch = await terminal.ask(samples["JT808-batch(0x0704)"])
        assert _result(batch) == (0x07F5, 0x0704, 0)
        terminal.writer.close()

    asyncio.run(running(lambda ready: serve_jt808("127.0.0.1", port, url=url,
                                                  settings=GpsSettings(), secret=SECRET,
                                                  ready=ready, options=FAST), body))  # fmt: skip
    rows = query(url, "SELECT time, ST_Y(geom), ST_X(geom), source, speed FROM gps.positions "
                 "WHERE device_id = %s", TRUCK)  # fmt: skip
    assert rows == [(dt.datetime(2015, 8, 17, 23, 21, 21, tzinfo=dt.UTC), pytest.approx(22.6426),
                     pytest.approx(114.032984), "jt808", 0.0)]  # fmt: skip
    assert len(query(url, "SELECT 1 FROM gps.positions WHERE device_id = %s", BATCHER)) == 8
    rejects = dict(query(url, "SELECT device_id || '/' || reason, count FROM gps.rejects "
                          "WHERE device_id IN ('', %s, 'jt808:13511221122')", TRUCK))  # fmt: skip
    assert rejects["jt808:13511221122/unknown_device"] == 1
    assert rejects[f"{TRUCK}/no_fix"] == 1
    assert rejects["/malformed"] >= 1 and rejects["/checksum"] >= 1


def test_a_terminal_number_is_registered_from_the_cli(url: str) -> None:
    env = {"SPATIAL_DATABASE_URL": url}
    made = run_cli("gps", "device", "add", "jt808-cli", "--jt808-phone", "00013800138000", **env)
    assert made.returncode == 0, made.stderr
    again = run_cli("gps", "device", "add", "jt808-cli-2", "--jt808-phone", "13800138000", **env)
    bad = run_cli("gps", "device", "add", "jt808-cli-3", "--jt808-phone", "138-0013", **env)
    assert again.returncode == 1 and "terminal 13800138000 is already registered" in again.stderr
    assert bad.returncode == 1 and "digits only" in bad.stderr
    assert query(url, "SELECT terminal FROM gps.devices WHERE id = 'jt808-cli'") == [
        ("13800138000",)
    ]
    audit = query(url, "SELECT details->>'terminal' FROM platform.audit_log "
                  "WHERE action = 'device-add' AND feature_ids = ARRAY['jt808-cli']")  # fmt: skip
    assert audit == [("13800138000",)]
