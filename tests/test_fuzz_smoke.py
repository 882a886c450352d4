"""A quick run of the coverage-guided fuzzing (benchmarks/fuzz.py, atheris): every target
starts, runs its seeds and mutations for a few seconds and finds nothing."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ("nmea", "osmand", "owntracks", "gpx", "cql2", "params")


def test_fuzz_smoke() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "fuzz.py"), "--target", "all",
         "--seconds", "3", "--no-record"],
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    rows = {
        m[1]: int(m[2].replace(",", ""))
        for m in re.finditer(r"^\| (\w+) \| \d+ \| ([\d,]+) \|", run.stdout, re.M)
    }
    assert set(rows) == set(TARGETS), run.stdout
    assert all(executions > 100 for executions in rows.values()), rows
