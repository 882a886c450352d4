"""Alarm rules files (``layers/alarms/*.yaml``): the shipped ones load, bad ones are refused
naming the file, the rule and what is wrong, and a sync is idempotent."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import psycopg
import pytest

from spatial.errors import ConfigurationError
from spatial.sta import rules


def test_the_shipped_rules_load() -> None:
    found = {r.id: r for r in rules.load()}
    assert {"water/water-level", "water/rainfall-1h", "water/rainfall-24h",
            "environment/aqi", "environment/pm25"} <= set(found)  # fmt: skip
    level = found["water/water-level"]
    assert level.collection == "water_gauges"
    assert [(lv.level, lv.attribute, lv.offset) for lv in level.levels] == [
        ("warning", "warning_level_m", 0.0), ("danger", "warning_level_m", 1.0)]  # fmt: skip
    assert found["water/rainfall-24h"].window == dt.timedelta(hours=24)
    aqi = found["environment/aqi"].levels
    assert [lv.level for lv in aqi] == ["good", "moderate", "light", "medium", "heavy", "severe"]
    assert [lv.above for lv in aqi] == [None, 50, 100, 150, 200, 300]
    assert [lv.level for lv in aqi if lv.alarm] == ["heavy", "severe"]


GOOD = """
rules:
  - id: level
    title: Level
    observed_property: Level
    levels:
      - {level: warning, above: 1}
"""

BAD = [
    ("not: [yaml", "cannot be read as YAML"),
    ("- a list", "expected a mapping with 'rules'"),
    (GOOD.replace("title: Level", "title: Level\n    colour: red"),
     "rule 'level': colour: Extra inputs are not permitted"),
    (GOOD.replace("above: 1}", "above: 1, attribute: warning_m}"),
     "rule 'level': levels.0: give either 'above' (a fixed value) or 'attribute'"),
    (GOOD.replace("above: 1}", "above: 1}\n      - {level: danger, above: 0.5}"),
     "rule 'level': (rule): level 'danger' starts above 0.5, not above level 'warning' (1)"),
    (GOOD.replace("above: 1}", "above: 1}\n      - {level: danger}"),
     "rule 'level': (rule): level 'danger' has no threshold"),
    (GOOD.replace("above: 1}", "above: 1}\n      - {level: warning, above: 2}"),
     "rule 'level': (rule): level 'warning' is given twice"),
    (GOOD.replace("above: 1}", "above: 1}\n      - {level: high, above: 2, alarm: false}"),
     "level 'high' is no alarm but the level below it is"),
    (GOOD.replace("    levels:", "    window: 1 week\n    levels:"),
     "rule 'level': window: window '1 week': write a whole number and min, h or d"),
    (GOOD.replace("    levels:", "    window: 90d\n    levels:"),
     "window '90d': from 1 min to 31 d"),
    (GOOD.replace("    levels:", "    valid: [10, 0]\n    levels:"),
     "valid range [10, 0]: min is above max"),
    (GOOD.replace("    levels:\n      - {level: warning, above: 1}", "    levels: []"),
     "rule 'level': levels: List should have at least 1 item"),
    (GOOD.replace("id: level", "id: Level Two"), "rule 'Level Two': id: String should match"),
    (GOOD.replace("    observed_property: Level\n", ""),
     "rule 'level': observed_property: Field required"),
    (GOOD + GOOD.replace("rules:\n", ""), "rule 'level' is given twice"),
    (GOOD.replace("above: 1}", "attribute: w, offset: 1}\n      - {level: x, offset: 2, above: 3}"),
     "rule 'level': levels.1: 'offset' is added to an 'attribute'"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "says"), BAD)
def test_a_bad_rules_file_is_refused_naming_file_rule_and_problem(
    tmp_path: Path, text: str, says: str
) -> None:
    (tmp_path / "good.yaml").write_text(GOOD, encoding="utf-8")
    path = tmp_path / "water.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    with pytest.raises(ConfigurationError) as refused:
        rules.load(tmp_path)
    message = str(refused.value)
    assert message.startswith(f"alarm rules {path}: "), message
    assert says in message


def test_a_rule_without_an_id_is_named_by_its_place(tmp_path: Path) -> None:
    path = tmp_path / "water.yaml"
    path.write_text(GOOD + GOOD.replace("rules:\n", "").replace("id: level", "title: x"))
    with pytest.raises(ConfigurationError, match=r"rule 2: id: Field required"):
        rules.load(tmp_path)


def test_a_file_name_that_is_no_subsystem_id_is_refused(tmp_path: Path) -> None:
    (tmp_path / "Water Alarms.yaml").write_text(GOOD, encoding="utf-8")
    with pytest.raises(ConfigurationError, match="the file's name is a subsystem id"):
        rules.load(tmp_path)


def test_syncing_the_same_rules_again_changes_nothing(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        rules.install(conn)
        again = rules.install(conn)
        assert not again.changed
        assert again.rules == len(rules.load())
        stored = conn.execute(
            "SELECT r.id, array_agg(l.level ORDER BY l.rank) FROM sta.alarm_rules r "
            "JOIN sta.alarm_levels l ON l.rule_id = r.id GROUP BY r.id"
        ).fetchall()  # fmt: skip
    assert ("water/water-level", ["warning", "danger"]) in stored
