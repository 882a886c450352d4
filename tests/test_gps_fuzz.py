"""Fuzzed junk streams into the GPS receivers over real sockets: OsmAnd / Traccar and
OwnTracks over HTTP on the live API, OwnTracks over MQTT through a real Mosquitto.

Each stream is seeded (the same every run) and mixes the valid fixes of a device of this
module's own with junk: random bytes, percent-encoded garbage, truncated and mutated JSON,
huge numbers, NaN and infinities, positions at (0, 0) or off the globe, missing fields,
invalid UTF-8, NUL and lone surrogates, wrong content types and topics, absurdly long
values. The receiver must answer every request below 500 and stay up, store every valid
fix exactly once, and count every reject: the expected answers and counts come from
replaying each request through the decoder the receiver uses, then the store's own checks
(:func:`spatial.gps.store.check`) on a model of the devices' latest fixes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import string
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import httpx
import psycopg
import pytest
from gpsnet import QUICK_MQTT, Broker, Publisher, broker_in, query, started, until
from support import LiveServer

from api.routers.gps import UNUSABLE
from spatial.gps import osmand, owntracks
from spatial.gps.fix import Decoded
from spatial.gps.mqtt import follow_owntracks
from spatial.gps.store import Last, add_device, check
from spatial.settings import GpsSettings, Settings

OSMAND, OWNTRACKS, MQTT = "fz-osmand", "fz-ot/phone", "fz-mq/phone"
T0 = dt.datetime(2026, 5, 4, tzinfo=dt.UTC)
VALID = 100
"""Valid fixes per stream, 30 s apart, with one to three pieces of junk before each."""
SETTINGS = GpsSettings()
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JSON = {"Content-Type": "application/json"}
OT_HEADERS = {"X-Limit-U": "fz-ot", "X-Limit-D": "phone"}
CONTENT_TYPES = ("application/octet-stream", "text/plain", "application/json",
                 "application/json; charset=latin-1", "application/x-www-form-urlencoded",
                 "multipart/form-data; boundary=zz", "image/png", "", ";;;")  # fmt: skip
NUMBER_JUNK = ("", "abc", "NaN", "nan", "inf", "-Infinity", "1e999", "9" * 400, "0x1A", "1_0",
               "１２", "1,5", "--1", ".", "e5", "91", "-90.0001", "181", "-180.5", "0", "-1",
               "1e-400", "1" * 5000, "\x00", b"1\xff2", "12\u202e")  # fmt: skip
JSON_JUNK = ("NaN", "Infinity", "-Infinity", "1e400", "-1e400", "9" * 5000, '"12.5"', "null",
             "true", "[]", "{}", "-1", "91", "-181", "0", '"\\u0000"', '"\\ud800"',
             '"' + "é" * 1000 + '"', "123456789012345678901234567890")  # fmt: skip
SHAPES = (b"", b"  ", b"null", b"[]", b"{}", b'"location"', b"42", b"[" * 100_000,
          b'{"a":' * 50_000, b"\xef\xbb\xbf{}", b'{"device_id": 7}', b'{"_type": "location"}',
          b'{"device_id": "fz-osmand", "location": []}')  # fmt: skip
ESCAPES = ("%", "%%", "%ZZ", "%c3%28", "%ff%fe", "%00", "%ed%a0%80", "id=%", "lat=%2", "&&",
           "==", "id", "lat=1&lat", "+", "%2B%2B")  # fmt: skip
SENTINEL = "@@junk@@"
NOISE = "".join(random.Random(5).choices(string.ascii_letters, k=3000))  # noqa: S311
"""A long name that does not compress (an index of the database must hold it as it is)."""
ODD_TOPICS = ("owntracks/fz-mq/phone/event", "owntracks/fz-mq", "owntracks",
              "owntracks//fz-mq/phone", "owntracks/ü/電話", "owntracks/" + NOISE + "/y",
              "owntracks/fz-nobody/phone", "elsewhere/fz-mq/phone")  # fmt: skip
T = TypeVar("T")


# -- the oracle --------------------------------------------------------------------------


@dataclass
class Oracle:
    """What the receiver should make of each request, replayed here: the decoder's fixes
    and rejects, then the store's checks against a model of every device's latest fix."""

    known: set[str]
    latest: dict[str, Last]
    settings: GpsSettings
    stored: set[tuple[str, dt.datetime]] = field(default_factory=set)
    rejects: Counter[tuple[str, str]] = field(default_factory=Counter)

    @classmethod
    def of(cls, url: str, settings: GpsSettings) -> Oracle:
        known = {row[0] for row in query(url, "SELECT id FROM gps.devices WHERE active")}
        rows = query(url, "SELECT device_id, time, ST_X(geom), ST_Y(geom) FROM gps.latest")
        return cls(known, {r[0]: (r[1], r[2], r[3]) for r in rows}, settings)

    def feed(self, decoded: Decoded, now: dt.datetime) -> int:
        """Take one request; returns the status the HTTP route answers it with."""
        kept, refused = check(decoded.fixes, known=self.known, latest=self.latest,
                              settings=self.settings, now=now)  # fmt: skip
        rejects = [*decoded.rejects, *refused]
        self.rejects.update((r.device or "", r.reason) for r in rejects)
        for fix in kept:
            device = str(fix.device)
            self.stored.add((device, fix.time))
            if device not in self.latest or fix.time > self.latest[device][0]:
                self.latest[device] = (fix.time, fix.lon, fix.lat)
        return 400 if not kept and any(r.reason in UNUSABLE for r in rejects) else 200


def _rejects(url: str) -> Counter[tuple[str, str]]:
    rows = query(url, "SELECT device_id, reason, count FROM gps.rejects")
    return Counter({(device, reason): int(count) for device, reason, count in rows})


def _times(url: str, device: str) -> list[dt.datetime]:
    return [row[0] for row in query(url, "SELECT time FROM gps.positions WHERE device_id = %s",
                                    device)]  # fmt: skip


def _stored_once(url: str, device: str, oracle: Oracle) -> None:
    """Every valid fix, and whatever else the oracle kept, stored once; nothing more."""
    times, kept = _times(url, device), {time for name, time in oracle.stored if name == device}
    assert len(times) == len(set(times))
    assert {_at(n) for n in range(VALID)} <= kept
    assert set(times) == kept


@pytest.fixture(scope="module")
def url(database_url: str) -> str:
    """The session database, with this module's devices registered."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        known = {row[0] for row in conn.execute("SELECT id FROM gps.devices")}
        for device in sorted({OSMAND, OWNTRACKS, MQTT} - known):
            add_device(conn, device)
    return database_url


# -- junk ----------------------------------------------------------------------------------


def _rng(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311 (reproducible junk, not a secret)


def _at(n: float) -> dt.datetime:
    """The time of the nth fix of a stream (junk comes at half steps)."""
    return T0 + dt.timedelta(seconds=round(30 * n))


def _place(n: float) -> tuple[float, float]:
    """Latitude and longitude of the nth fix: 15 m in 30 s."""
    return 22.7 + n * 1e-4, 114.1 + n * 1e-4


def _stream(rng: random.Random, valid: Callable[[int], T], junk: Callable[[float], T]) -> list[T]:
    """The valid fixes in order, one to three pieces of junk (at half steps) before each."""
    out: list[T] = []
    for n in range(VALID):
        out += [junk(n - 0.5) for _ in range(rng.randint(1, 3) if n else 0)]
        out.append(valid(n))
    return out


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


def _junk_text(rng: random.Random) -> str:
    """Free text as a device might send it: any code point, NUL and lone surrogates too."""
    odd = ("\x00", "\ud800", "\udfff", "\u202e", "\ufeff", "電", "\U0001f600", "'", '"', "\\")
    return "".join(rng.choice(odd) if rng.random() < 0.3 else chr(rng.randrange(32, 0x3000))
                   for _ in range(rng.randrange(1, 30)))  # fmt: skip


def _garble(data: bytes, rng: random.Random) -> bytes:
    """Truncated, overwritten with random bytes, or with invalid UTF-8 inserted."""
    cut, how = rng.randrange(len(data)), rng.randrange(3)
    if how == 0:
        return data[:cut]
    if how == 1:
        return data[:cut] + rng.randbytes(rng.randrange(1, 8)) + data[cut + 1 :]
    return data[:cut] + rng.choice((b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x00")) + data[cut:]


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict | list):
        for key, item in value.items() if isinstance(value, dict) else enumerate(value):
            yield from _leaves(item, (*path, key))
    else:
        yield path


def _mutated_json(message: Any, rng: random.Random) -> bytes:
    """``message`` as JSON with one value replaced by junk, one key gone, or garbled."""
    how = rng.randrange(3)
    if how == 2:
        return _garble(_dumps(message), rng)
    *parents, last = rng.choice(list(_leaves(message)))
    holder = message
    for key in parents:
        holder = holder[key]
    if how == 1:
        del holder[last]
        return _dumps(message)
    holder[last] = SENTINEL
    return _dumps(message).replace(f'"{SENTINEL}"'.encode(), rng.choice(JSON_JUNK).encode())


# -- OsmAnd / Traccar --------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One HTTP request of a stream."""

    kind: str
    method: str
    target: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def _params(n: float, rng: random.Random) -> dict[Any, Any]:
    when, (lat, lon) = _at(n), _place(n)
    stamp = rng.choice((f"{when.timestamp():.0f}", f"{when.timestamp() * 1000:.0f}",
                        f"{when:%Y-%m-%d %H:%M:%S}", when.isoformat()))  # fmt: skip
    return {"id": OSMAND, "lat": f"{lat:.6f}", "lon": f"{lon:.6f}", "timestamp": stamp,
            "speed": "1.2", "bearing": "90", "altitude": "31", "batt": "80"}  # fmt: skip


def _traccar9(n: float) -> dict[str, Any]:
    """The JSON body of Traccar Client 9."""
    lat, lon = _place(n)
    coords = {"latitude": lat, "longitude": lon, "speed": 0.6, "heading": 90, "accuracy": 5}
    location = {"timestamp": _at(n).isoformat(), "coords": coords, "is_moving": True,
                "battery": {"level": 0.8, "is_charging": False}, "extras": {}}  # fmt: skip
    return {"device_id": OSMAND, "location": location}


def _post(kind: str, body: bytes, headers: dict[str, str]) -> Call:
    return Call(kind, "POST", "/gps/osmand", body, headers)


def _query(kind: str, rng: random.Random, params: dict[Any, Any] | str) -> Call:
    """The parameters in the query string or in a form body."""
    text = params if isinstance(params, str) else urlencode(params)
    if rng.random() < 0.5:
        return Call(kind, "GET", "/gps/osmand?" + text)
    return _post(kind, text.encode(), FORM)


def _osmand_valid(n: int, rng: random.Random) -> Call:
    if rng.random() < 0.3:
        body = _traccar9(n)
        if rng.random() < 0.3:
            body["location"]["extras"]["note"] = _junk_text(rng)
        return _post("valid", _dumps(body), JSON)
    params = _params(n, rng)
    if rng.random() < 0.3:  # an attribute of random bytes, under a random name at times
        params[rng.choice(("note", rng.randbytes(5)))] = rng.randbytes(rng.randrange(1, 40))
    if n == VALID // 2:  # absurdly long, under the body limit
        return _post("valid", urlencode({**params, "note": "x" * 1_000_000}).encode(), FORM)
    return _query("valid", rng, params)


def _osmand_junk(n: float, rng: random.Random, now: dt.datetime) -> Call:
    kind = rng.choice(("random-query", "bad-escapes", "bad-value", "bad-value", "missing",
                       "off-globe", "future", "jump", "stranger", "random-body", "json",
                       "json", "shape", "wrong-type", "invalid-utf8", "long", "batch"))  # fmt: skip
    params = _params(n, rng)
    batch = _traccar9(n)
    # the same location twice (an in-batch duplicate), then one whose coords do not read
    batch["location"] = [batch["location"], batch["location"], {"coords": "here"}]
    calls = {
        "random-query": lambda: Call(kind, "GET", "/gps/osmand?" + quote(
            rng.randbytes(rng.randrange(400)), "=&")),
        "bad-escapes": lambda: _query(kind, rng, "&".join(rng.choices(ESCAPES, k=rng.randrange(
            1, 8)))),
        "random-body": lambda: _post(kind, rng.randbytes(rng.randrange(1, 2000)), rng.choice(
            ({}, {"Content-Type": rng.choice(CONTENT_TYPES)}))),
        "json": lambda: _post(kind, _mutated_json(_traccar9(n), rng), JSON),
        "shape": lambda: _post(kind, rng.choice(SHAPES), JSON),
        "wrong-type": lambda: rng.choice((_post(kind, _dumps(_traccar9(n)), FORM),
                                          _post(kind, urlencode(params).encode(), JSON))),
        "invalid-utf8": lambda: _post(kind, _garble(urlencode(params).encode(), rng), FORM),
        "batch": lambda: _post(kind, _dumps(batch), JSON),
    }  # fmt: skip
    if kind in calls:
        return calls[kind]()
    if kind == "bad-value":
        name = rng.choice(("id", "lat", "lon", "timestamp", "speed", "bearing", "altitude",
                           "accuracy", "hdop", "batt", "valid", "location", "cell",
                           "wifi"))  # fmt: skip
        value = rng.choice(NUMBER_JUNK)
        # a blank timestamp is no timestamp: the server would use its own clock
        params[name] = "abc" if name == "timestamp" and not str(value).strip() else value
    elif kind == "missing":
        for name in rng.choice((("lat",), ("lon",), ("id",), ("lat", "lon"))):
            del params[name]
    else:
        params.update({
            "off-globe": rng.choice(({"lat": "0", "lon": "0"}, {"lat": "95"}, {"lon": "-200"})),
            "future": {"timestamp": f"{(now + dt.timedelta(days=1)).timestamp():.0f}"},
            "jump": {"lat": "45.0", "lon": "10.0"},
            "stranger": {"id": rng.choice(("fz-nobody", NOISE))},
            "long": {rng.choice(("lat", "timestamp", "speed")): "1" * 200_000},
        }[kind])  # fmt: skip
    if kind == "long":  # too long for a URL: in a form body
        return _post(kind, urlencode(params).encode(), FORM)
    return _query(kind, rng, params)


# -- OwnTracks ---------------------------------------------------------------------------


def _location(n: float) -> dict[str, Any]:
    lat, lon = _place(n)
    return {"_type": "location", "lat": lat, "lon": lon, "tst": int(_at(n).timestamp()),
            "acc": 5, "vel": 3, "batt": 80, "bs": 1, "tid": "ph"}  # fmt: skip


def _ot_valid(n: int, rng: random.Random) -> bytes:
    message = _location(n)
    if rng.random() < 0.3:
        message[rng.choice(("note", _junk_text(rng)))] = _junk_text(rng)
    if n == VALID // 2:
        message["desc"] = "x" * 1_000_000
    return _dumps(message)


def _ot_junk(n: float, rng: random.Random, now: dt.datetime) -> tuple[str, bytes]:
    kind = rng.choice(("random-bytes", "json", "json", "shape", "other-type", "missing",
                       "off-globe", "future", "jump", "long", "invalid-utf8"))  # fmt: skip
    message = _location(n)
    if kind in ("random-bytes", "json", "shape", "long", "invalid-utf8"):
        big = _dumps({**message, rng.choice(("lat", "tst")): SENTINEL})
        return kind, {
            "random-bytes": lambda: rng.randbytes(rng.randrange(1, 500)),
            "json": lambda: _mutated_json(message, rng),
            "shape": lambda: rng.choice(SHAPES),
            "long": lambda: big.replace(f'"{SENTINEL}"'.encode(), b"9" * 100_000),
            "invalid-utf8": lambda: _dumps(message).replace(b'"ph"', b'"p\xff\xc3\x28h"'),
        }[kind]()  # fmt: skip
    if kind == "missing":
        del message[rng.choice(("lat", "lon", "tst", "_type"))]
    message.update({
        "other-type": {"_type": rng.choice(("transition", "waypoint", "lwt", "cmd", "card",
                                            "encrypted", "", "LOCATION", 5, None))},
        "off-globe": rng.choice(({"lat": 0, "lon": 0}, {"lat": 95}, {"lon": -200})),
        "future": {"tst": int(now.timestamp()) + 86_400},
        "jump": {"lat": 45.0, "lon": 10.0},
    }.get(kind, {}))  # fmt: skip
    return kind, _dumps(message)


def _ot_headers(rng: random.Random) -> dict[str, str]:
    headers = dict(OT_HEADERS) if rng.random() < 0.75 else rng.choice((
        {}, {"X-Limit-U": "fz-ot"}, {"X-Limit-D": "phone"}, {"X-Limit-U": NOISE},
        {"X-Limit-U": "a b", "X-Limit-D": "c/d"}, {"X-Limit-U": "fz-nobody", "X-Limit-D": "x"},
    ))  # fmt: skip
    if rng.random() < 0.3:
        headers["Content-Type"] = rng.choice(CONTENT_TYPES)
    return headers


# -- over HTTP ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(live_api: LiveServer, url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_api.url, timeout=30) as client:
        yield client


def _decoded(sent: httpx.Request, now: dt.datetime) -> Decoded:
    """What the route decodes, from the request as it was sent (as ``api.routers.gps``)."""
    if sent.url.path == "/gps/owntracks":
        return owntracks.decode_owntracks(sent.content, user=sent.headers.get("x-limit-u"),
                                          device=sent.headers.get("x-limit-d"))  # fmt: skip
    sent_query = sent.url.raw_path.decode("ascii").partition("?")[2]
    target = "/gps/osmand" + ("?" + sent_query if sent_query else "")
    return osmand.decode_request(target, sent.content, content_type=sent.headers.get(
        "content-type"), received=now)  # fmt: skip


def _replay(api: httpx.Client, url: str, settings: Settings, calls: list[Call]) -> Oracle:
    """Send the calls one by one: no answer 5xx, every answer what the oracle says, and
    the reject counters grown by exactly what it counted."""
    oracle = Oracle.of(url, settings.gps)
    before = _rejects(url)
    answers = []
    for call in calls:
        now = dt.datetime.now(dt.UTC)
        answer = api.request(call.method, call.target, content=call.body or None,
                             headers=call.headers)  # fmt: skip
        decoded = _decoded(answer.request, now)
        for fix in decoded.fixes:
            if fix.time == now and fix.device in oracle.known:  # timed by the server's clock
                rows = query(url, "SELECT max(time) FROM gps.positions WHERE device_id = %s "
                             "AND time >= %s", fix.device, now)  # fmt: skip
                fix.time = rows[0][0] or now
        answers.append((call.kind, answer.status_code, oracle.feed(decoded, now), answer.text))
    crashed = [(kind, status, text[:200]) for kind, status, _, text in answers if status >= 500]
    assert not crashed, f"{len(crashed)} answers 5xx: {crashed}"
    assert api.get("/health").status_code == 200
    wrong = [(kind, status, want, text[:200]) for kind, status, want, text in answers
             if status != want]  # fmt: skip
    assert not wrong, f"{len(wrong)} answers not as the decoder says: {wrong[:5]}"
    assert _rejects(url) - before == oracle.rejects
    return oracle


def test_osmand_http_junk_stream(api: httpx.Client, url: str, settings: Settings) -> None:
    rng, now = _rng(1129), dt.datetime.now(dt.UTC)
    calls = _stream(rng, lambda n: _osmand_valid(n, rng), lambda n: _osmand_junk(n, rng, now))
    oracle = _replay(api, url, settings, calls)
    _stored_once(url, OSMAND, oracle)
    before = _rejects(url)
    huge = b"id=" + OSMAND.encode() + b"&note=" + b"x" * (17 * 2**20)  # over the 16 MiB
    assert api.post("/gps/osmand", content=huge, headers=FORM).status_code == 413
    assert api.get("/health").status_code == 200
    assert _rejects(url) == before


def test_owntracks_http_junk_stream(api: httpx.Client, url: str, settings: Settings) -> None:
    rng, now = _rng(1130), dt.datetime.now(dt.UTC)

    def junk(n: float) -> Call:
        kind, body = _ot_junk(n, rng, now)
        return Call(kind, "POST", "/gps/owntracks", body, _ot_headers(rng))

    valid = {**OT_HEADERS, **JSON}
    calls = _stream(rng, lambda n: Call("valid", "POST", "/gps/owntracks", _ot_valid(n, rng),
                                        valid), junk)  # fmt: skip
    oracle = _replay(api, url, settings, calls)
    _stored_once(url, OWNTRACKS, oracle)


# -- over MQTT ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with broker_in(tmp_path_factory.mktemp("mosquitto")) as server:
        yield server


def _mqtt_junk(
    n: float, rng: random.Random, known: set[str], now: dt.datetime
) -> tuple[str, str, bytes]:
    """(kind, topic, payload). The receiver stores a batch of messages at once, sorted by
    time: junk that would make a fix of a registered device (but for the jumps, judged
    against the valid fix before them wherever the batches fall) is replaced by random
    bytes, so that the expected counts do not depend on the batches."""
    kind, payload = _ot_junk(n, rng, now)
    topic = "owntracks/" + MQTT if rng.random() < 0.7 else rng.choice(ODD_TOPICS)
    fixes = owntracks.decode_owntracks(payload, topic=topic).fixes
    if check(fixes, known=known, latest={}, settings=SETTINGS, now=now)[0] and kind != "jump":
        kind, payload = "random-bytes", rng.randbytes(rng.randrange(1, 500))
    return kind, topic, payload


def test_owntracks_mqtt_junk_stream(broker: Broker, url: str) -> None:
    rng, now = _rng(1131), dt.datetime.now(dt.UTC)
    oracle = Oracle.of(url, SETTINGS)
    stream = _stream(rng, lambda n: ("valid", "owntracks/" + MQTT, _ot_valid(n, rng)),
                     lambda n: _mqtt_junk(n, rng, oracle.known, now))  # fmt: skip
    before = _rejects(url)
    publisher = Publisher(broker.port, "test-fuzz-phone")
    wanted = {_at(n) for n in range(VALID)}

    def follow(ready: asyncio.Event) -> Any:
        return follow_owntracks("127.0.0.1", broker.port, url=url, settings=SETTINGS,
                                client_id="spatial-gps-test-fuzz", ready=ready,
                                options=QUICK_MQTT)  # fmt: skip

    async def main() -> None:
        async with started(follow) as receiver:
            for _, topic, payload in stream:
                publisher.publish(topic, payload)
            await asyncio.to_thread(publisher.wait)
            # the last message is a valid fix: stored once all before it are
            await until(lambda: wanted <= set(_times(url, MQTT)), 30)
            assert not receiver.done(), "the receiver stopped"

    try:
        asyncio.run(main())
    finally:
        publisher.close()
    assert len(publisher.acked) == len(stream)
    for _, topic, payload in stream:
        if topic == "owntracks" or topic.startswith("owntracks/"):  # the subscription's
            oracle.feed(owntracks.decode_owntracks(payload, topic=topic), now)
    _stored_once(url, MQTT, oracle)
    assert _rejects(url) - before == oracle.rejects
