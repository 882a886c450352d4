"""Coverage-guided fuzzing (atheris / libFuzzer) of the platform's decoders and parsers.

Each target runs in its own subprocess for a fixed budget: the platform modules it
exercises are imported under ``atheris.instrument_imports()``, a small corpus of valid
inputs (written here, in code) seeds libFuzzer, and the harness calls the decoder with
each mutated input. A decoder's documented outcomes (a ``Decoded`` with rejects,
``spatial.errors.InvalidInputError``) are fine; any other exception, or a result that
breaks the decoders' promises (a fix off the globe or without a time zone), is a finding:
libFuzzer writes the input to ``var/bench/fuzz/<target>/crash-*`` and stops that target.

    .venv/bin/python benchmarks/fuzz.py [--target NAME|all] [--seconds 60] [--no-record]

Prints a table per target (seconds, executions, exec/s, final coverage, findings), appends
it to ``benchmarks/RESULTS.md`` unless ``--no-record``, and exits 1 if any target found a
crash, printing the reproducer and its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import reduce
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
OUT = ROOT / "var" / "bench" / "fuzz"
TARGETS = ("nmea", "osmand", "owntracks", "gpx", "cql2", "params")
TIMEOUT_S = 10
"""libFuzzer's limit for one input (a slower one is a finding: ``timeout-*``)."""
RSS_MB = 2048


# -- seeds: valid inputs; the first byte of every input selects the harness's mode --------


def _nmea(body: str) -> str:
    return f"${body}*{reduce(lambda a, c: a ^ ord(c), body, 0):02X}"


NMEA = "\r\n".join([
    _nmea("GPRMC,123519.00,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W,A"),
    _nmea("GPGGA,123519.00,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"),
    _nmea("GPGLL,4916.45,N,12311.12,W,225444,A"),
    _nmea("GNGNS,014035.00,4332.69262,S,17235.48549,E,RR,13,0.9,25.63,11.24,,"),
    _nmea("GPVTG,054.7,T,034.4,M,005.5,N,010.2,K,A"),
    _nmea("GPGSA,A,3,04,05,,09,12,,,24,,,,,2.5,1.3,2.1"),
    _nmea("GPZDA,201530.00,04,07,2002,00,00"),
    _nmea("PGRME,15.0,M,45.0,M,25.0,M"),
])  # fmt: skip
OSMAND_QUERY = (
    "id=YF-AMB-01&timestamp=1700000000&lat=23.05&lon=112.2&speed=21.6&bearing=90"
    "&altitude=12&accuracy=5&hdop=0.9&batt=87.5&charge=true&valid=1"
)
OSMAND_JSON = json.dumps({
    "device_id": "YF-AMB-01",
    "location": [{"timestamp": "2026-01-01T08:00:00.000Z", "coords": {
        "latitude": 23.05, "longitude": 112.2, "speed": 6.1, "heading": 90,
        "altitude": 12, "accuracy": 5}, "battery": {"level": 0.8, "is_charging": True},
        "is_moving": True, "extras": {"driver": "li"}}],
})  # fmt: skip
OWNTRACKS = json.dumps({"_type": "location", "tid": "jp", "lat": 23.05, "lon": 112.2,
                        "tst": 1700000000, "acc": 5, "alt": 12, "vel": 40, "cog": 90,
                        "batt": 80, "conn": "m"})  # fmt: skip
GPX = """<?xml version="1.0" encoding="UTF-8"?>
<gpx version="1.1" creator="fuzz" xmlns="http://www.topografix.com/GPX/1/1"
 xmlns:gpxtpx="http://www.garmin.com/xmlschemas/TrackPointExtension/v2">
 <wpt lat="23.1" lon="112.1"><time>2026-01-01T07:00:00Z</time><name>base</name></wpt>
 <rte><name>r</name><rtept lat="23.2" lon="112.2"><time>2026-01-01T07:30:00Z</time></rtept></rte>
 <trk><name>YF-AMB-01</name><type>drive</type><trkseg>
  <trkpt lat="23.05" lon="112.2"><ele>12</ele><time>2026-01-01T08:00:00Z</time><sat>8</sat>
   <hdop>0.9</hdop><extensions><gpxtpx:TrackPointExtension><gpxtpx:speed>6.1</gpxtpx:speed>
   <gpxtpx:course>90</gpxtpx:course><gpxtpx:hr>90</gpxtpx:hr></gpxtpx:TrackPointExtension>
   </extensions></trkpt>
  <trkpt lat="23.06" lon="112.2"><time>2026-01-01T08:00:10+08:00</time></trkpt>
 </trkseg></trk>
</gpx>
"""
CQL2 = [
    "name = 'x' AND n > 3",
    "area BETWEEN 1 AND 20.5 OR name LIKE 'a%' OR name IN ('a', 'b') OR name IS NULL",
    "NOT (n + 2 * 3 >= -4) AND ok = TRUE",
    "S_INTERSECTS(geometry, POLYGON((112 23, 113 23, 113 24, 112 24, 112 23)))",
    "S_WITHIN(geom, BBOX(112, 23, 113, 24)) AND S_DWITHIN(geometry, POINT(112 23), 10, meters)",
    "built > DATE('2020-01-01') AND T_INTERSECTS(built, INTERVAL('2020-01-01', '..'))",
    "when < TIMESTAMP('2024-05-01T08:00:00Z') AND CASEI(name) = casei('X')",
    "A_CONTAINS(tags, ('a', 'b')) OR id = 3",
]
PARAMS = ["112,23,113,24", "112.5,23,-10,113,24.5,100", "2024-05-01T08:00:00Z",
          "2024-05-01/2024-06-01T00:00:00+08:00", "../2024-06-01", "2024-05-01T08:00:00Z/..",
          "EPSG:3857", "http://www.opengis.net/def/crs/OGC/1.3/CRS84", "[EPSG:4546]",
          "2025-06-01", "2025-06-01T08:00z"]  # fmt: skip


def seeds(target: str) -> list[bytes]:
    """The valid inputs a target starts from (mode byte first)."""
    if target == "nmea":
        lines = NMEA.split("\r\n")
        return [bytes([m]) + text.encode() for m in (0, 1) for text in (NMEA, *lines)]
    if target == "osmand":
        return [b"\x00" + OSMAND_QUERY.encode(), b"\x01" + OSMAND_QUERY.encode(),
                b"\x02" + OSMAND_JSON.encode(), b"\x03/?" + OSMAND_QUERY.encode()]  # fmt: skip
    if target == "owntracks":
        return [bytes([m]) + OWNTRACKS.encode() for m in range(3)] + [b'\x00{"_type":"card"}']
    if target == "gpx":
        return [b"\x00" + GPX.encode(), b"\x01" + GPX.replace("1/1", "1/0").encode()]
    if target == "cql2":
        return [bytes([m]) + t.encode() for t in CQL2 for m in (0, 2)] + [
            b"\x01" + json.dumps({"op": "and", "args": [
                {"op": "=", "args": [{"property": "name"}, "x"]},
                {"op": "s_intersects", "args": [{"property": "geometry"},
                 {"type": "Point", "coordinates": [112, 23]}]}]}).encode()]  # fmt: skip
    if target == "params":
        return [b"\x00" + p.encode() for p in PARAMS]
    raise ValueError(target)


# -- the harnesses (in the child process) ---------------------------------------------------


def harness(target: str) -> Callable[[bytes], None]:
    """The one-input function of a target, its platform modules instrumented."""
    import atheris  # noqa: PLC0415

    with atheris.instrument_imports(include=["spatial"]):
        from spatial.errors import InvalidInputError  # noqa: PLC0415
        from spatial.features import LayerSchema, Params, serving_crs  # noqa: PLC0415
        from spatial.gps.fix import Decoded  # noqa: PLC0415

        modules = _instrumented()

    def sane(decoded: Decoded) -> None:
        for fix in decoded.fixes:
            if not (-90 <= fix.lat <= 90 and -180 <= fix.lon <= 180):
                raise AssertionError(f"fix off the globe: {fix}")
            if fix.time.tzinfo is None:
                raise AssertionError(f"fix without a time zone: {fix}")
        for reject in decoded.rejects:
            if not reject.detail:
                raise AssertionError(f"reject without detail: {reject}")

    nmea, osmand, owntracks = modules["nmea"], modules["osmand"], modules["owntracks"]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    fields = {"name": "text", "n": "integer", "area": "double precision", "built": "date",
              "when": "timestamp", "ok": "boolean", "tags": "text[]", "big": "bigint"}  # fmt: skip
    layers = [LayerSchema(id="fuzz", schema="layers", table="fuzz", srid=srid, fields=fields,
                          temporal="built") for srid in (4326, 4490, 3857)]  # fmt: skip
    crss = [None, "EPSG:3857", "http://www.opengis.net/def/crs/EPSG/0/4326"]

    def fuzz_nmea(mode: int, raw: bytes, text: str) -> None:
        lines: list[str] | list[bytes] = raw.splitlines() if mode & 1 else text.splitlines()
        date = start.date() if mode & 2 else None
        sane(nmea.decode(lines, device="fuzz" if mode & 4 else None, start_date=date))

    def fuzz_osmand(mode: int, raw: bytes, text: str) -> None:
        received = start if mode & 4 else None
        form = "application/x-www-form-urlencoded"
        path, _, body = text.partition("\n")
        sane([
            lambda: osmand.decode_query(osmand.parse_query(text), received=received),
            lambda: osmand.decode_request("/", raw, received=received, content_type=form),
            lambda: osmand.decode_json(raw, received=received),
            lambda: osmand.decode_request(path, body.encode("utf-8", "surrogateescape"),
                                          received=received),
        ][mode & 3]())  # fmt: skip

    def fuzz_owntracks(mode: int, raw: bytes, _: str) -> None:
        names = [{"topic": "owntracks/jane/phone"}, {"user": "jane", "device": "phone"}, {}]
        sane(owntracks.decode_owntracks(raw, **names[mode % 3]))

    def fuzz_gpx(mode: int, raw: bytes, _: str) -> None:
        with contextlib.suppress(InvalidInputError):
            sane(modules["read_gpx"](raw, device="fuzz" if mode & 1 else None))

    def fuzz_cql2(mode: int, _: bytes, text: str) -> None:
        with contextlib.suppress(InvalidInputError):
            tree = modules["parse"](text, "cql2-json" if mode & 1 else None)
            crs = serving_crs(crss[(mode >> 2) % 3])
            modules["compile_filter"](tree, layers[mode % 3], Params(), crs)

    def fuzz_params(_: int, __: bytes, text: str) -> None:
        for name in ("parse_bbox", "parse_datetime", "serving_crs", "parse_as_of"):
            with contextlib.suppress(InvalidInputError):
                modules[name](text)

    chosen = {"nmea": fuzz_nmea, "osmand": fuzz_osmand, "owntracks": fuzz_owntracks,
              "gpx": fuzz_gpx, "cql2": fuzz_cql2, "params": fuzz_params}[target]  # fmt: skip

    def one(data: bytes) -> None:
        mode, raw = (data[0], data[1:]) if data else (0, b"")
        chosen(mode, raw, raw.decode("utf-8", "surrogateescape"))

    return one


def _instrumented() -> dict[str, Any]:
    """The decoders and parsers (imported inside ``atheris.instrument_imports``)."""
    from spatial.features import parse_bbox, parse_datetime, serving_crs  # noqa: PLC0415
    from spatial.filters import compile_filter, parse  # noqa: PLC0415
    from spatial.gps import nmea, osmand, owntracks  # noqa: PLC0415
    from spatial.gps.gpx import read_gpx  # noqa: PLC0415
    from spatial.ingest.history import parse_as_of  # noqa: PLC0415

    return {"nmea": nmea, "osmand": osmand, "owntracks": owntracks, "read_gpx": read_gpx,
            "parse": parse, "compile_filter": compile_filter, "parse_bbox": parse_bbox,
            "parse_datetime": parse_datetime, "serving_crs": serving_crs,
            "parse_as_of": parse_as_of}  # fmt: skip


def child(target: str, seconds: int, folder: Path) -> None:
    """Fuzz one target (in this process) until the budget is spent or it crashes."""
    import atheris  # noqa: PLC0415

    one = harness(target)
    corpus = folder / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for n, seed in enumerate(seeds(target)):
        (corpus / f"seed-{n:02d}").write_bytes(seed)
    argv = [sys.argv[0], str(corpus), f"-max_total_time={seconds}", f"-timeout={TIMEOUT_S}",
            f"-rss_limit_mb={RSS_MB}", f"-artifact_prefix={folder}/", "-print_final_stats=1",
            "-max_len=8192"]  # fmt: skip
    atheris.Setup(argv, one)
    atheris.Fuzz()


# -- the parent: one subprocess per target, then the table ---------------------------------


@dataclass
class Run:
    target: str
    seconds: float = 0.0
    executions: int = 0
    coverage: int = 0
    status: int = 0
    crashes: list[str] = field(default_factory=list)
    traceback: str = ""

    @property
    def rate(self) -> float:
        return self.executions / self.seconds if self.seconds else 0.0


def fuzz(target: str, seconds: int) -> Run:
    """Run one target in a subprocess; read libFuzzer's output."""
    folder = OUT / target
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "fuzz.log"
    command = [sys.executable, __file__, "--child", target, "--seconds", str(seconds)]
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    started = time.monotonic()
    with log.open("w", encoding="utf-8") as out:
        status = subprocess.run(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                timeout=seconds + 120, check=False).returncode  # fmt: skip
    run = Run(target, seconds=time.monotonic() - started, status=status)
    output = log.read_text(encoding="utf-8", errors="replace")
    for line in output.splitlines():
        if m := re.match(r"#(\d+)\s+\S+\s+cov: (\d+)", line):
            run.executions = max(run.executions, int(m[1]))
            run.coverage = max(run.coverage, int(m[2]))
        if m := re.match(r"stat::number_of_executed_units: (\d+)", line):
            run.executions = max(run.executions, int(m[1]))
        if m := re.search(r"Test unit written to (\S+)", line):
            run.crashes.append(str(Path(m[1]).resolve().relative_to(ROOT)))
        if m := re.match(r"Done (\d+) runs in (\d+) second", line):
            run.executions = max(run.executions, int(m[1]))
    if m := re.search(r"=== Uncaught Python exception: ===\n(.*?)(?:\n==\d+==|\Z)", output, re.S):
        run.traceback = m[1].strip()
    if status != 0 and not run.crashes:
        run.traceback = run.traceback or output[-3000:]
        run.crashes.append(f"(exit status {status}, see {log.relative_to(ROOT)})")
    return run


def table(runs: list[Run]) -> list[str]:
    return [
        "| target | seconds | executions | exec/s | coverage | findings |",
        "|---|---:|---:|---:|---:|---:|",
        *(f"| {r.target} | {r.seconds:.0f} | {r.executions:,} | {r.rate:,.0f} | {r.coverage:,} "
          f"| {len(r.crashes)} |" for r in runs),
    ]  # fmt: skip


def record(runs: list[Run], seconds: int) -> None:
    """Append this run as a dated section of ``benchmarks/RESULTS.md``."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    revision = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, check=False).stdout.strip() or "?"  # fmt: skip
    lines = [
        f"## {now} · Fuzzing the decoders (atheris, coverage-guided)",
        "",
        (
            f"- machine: `{platform.node()}`, {os.cpu_count()} CPUs; Python "
            f"{platform.python_version()}, atheris {_version('atheris')}"
        ),
        (
            f"- {seconds} s per target, one process each, seeded with valid inputs; -timeout="
            f"{TIMEOUT_S} s per input, -rss_limit_mb={RSS_MB}; platform at {revision}"
        ),
        "",
        *table(runs),
        "",
        *(f"- finding in {r.target}: `{c}`" for r in runs for c in r.crashes),
    ]
    gap = "" if RESULTS.read_text(encoding="utf-8").endswith("\n\n") else "\n"
    with RESULTS.open("a", encoding="utf-8") as out:
        out.write(gap + "\n".join(lines).rstrip() + "\n\n")


def _version(name: str) -> str:
    from importlib.metadata import version  # noqa: PLC0415

    return version(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="all", choices=[*TARGETS, "all"])
    parser.add_argument("--seconds", type=int, default=60, help="budget per target")
    parser.add_argument("--no-record", action="store_true",
                        help="do not append to benchmarks/RESULTS.md")  # fmt: skip
    parser.add_argument("--child", choices=TARGETS, help=argparse.SUPPRESS)
    parser.add_argument("--replay", type=Path, help="run one input of --child (a reproducer)")
    args = parser.parse_args(argv)
    if args.child and args.replay:
        harness(args.child)(args.replay.read_bytes())
        return 0
    if args.child:
        child(args.child, args.seconds, OUT / args.child)
        return 0
    runs = []
    for target in TARGETS if args.target == "all" else (args.target,):
        _say(f"fuzzing {target} for {args.seconds} s ...")
        runs.append(fuzz(target, args.seconds))
        last = runs[-1]
        _say(f"  {last.executions:,} inputs, cov {last.coverage}, {len(last.crashes)} findings")
    _say("")
    for line in table(runs):
        _say(line)
    if not args.no_record:
        record(runs, args.seconds)
        _say(f"appended to {RESULTS.relative_to(ROOT)}")
    failed = [r for r in runs if r.crashes]
    for r in failed:
        _say(f"\n{r.target}: reproducer {', '.join(r.crashes)}\n{r.traceback}")
        replay = f"benchmarks/fuzz.py --child {r.target} --replay {r.crashes[0]}"
        _say(f"replay: .venv/bin/python {replay}")
    return 1 if failed else 0


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    raise SystemExit(main())
