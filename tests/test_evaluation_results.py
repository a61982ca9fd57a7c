"""Results: schema, atomic save/load round trip, clear errors on corrupt or foreign files, row queries."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from medrobust.errors import DataError
from medrobust.evaluation import SCHEMA, Results


def sample() -> Results:
    rows = [
        {"threat": "clean", "norm": None, "level": 0.0, "metric": "accuracy", "value": 0.9, "n": 10},
        {"threat": "clean", "norm": None, "level": 0.0, "metric": "auc", "value": float("nan"), "n": 10},
        {"threat": "pgd", "norm": "linf", "level": 0.1, "metric": "accuracy", "value": 0.4, "n": 10},
        {"threat": "pgd", "norm": "linf", "level": 0.05, "metric": "accuracy", "value": 0.6, "n": 10},
        {"threat": "pgd", "norm": "l2", "level": 0.5, "metric": "accuracy", "value": 0.7, "n": 10},
    ]
    return Results(
        rows=rows,
        summary={"clean_accuracy": 0.9},
        checks=[{"name": "x", "passed": False, "message": "m"}],
        n=10,
        task={"kind": "binary"},
        dataset="toy",
        split="test",
        model="m",
        method="standard",
        seed=3,
    )


def test_round_trip(tmp_path: Path) -> None:
    res = sample()
    path = res.save(tmp_path / "sub" / "results.json")
    doc = json.loads(path.read_text())
    assert list(doc) == [
        "schema",
        "dataset",
        "split",
        "model",
        "method",
        "task",
        "n",
        "rows",
        "summary",
        "checks",
        "config",
        "versions",
        "seed",
        "seconds",
    ]
    assert doc["schema"] == SCHEMA and doc["rows"][1]["value"] is None  # NaN is written as null
    back = Results.load(path)
    assert math.isnan(back.rows[1]["value"])
    assert [r for i, r in enumerate(back.rows) if i != 1] == [r for i, r in enumerate(res.rows) if i != 1]
    assert back.summary == res.summary and back.checks == res.checks and back.seed == 3
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]  # no temporary file left behind


def test_queries() -> None:
    res = sample()
    assert len(res.rows_for(threat="pgd")) == 3
    assert len(res.rows_for(metric="accuracy", norm="linf")) == 2
    assert res.curve("pgd", norm="linf") == ([0.05, 0.1], [0.6, 0.4])
    assert res.value("pgd", "accuracy", 0.5, "l2") == 0.7
    assert res.value("clean", "accuracy") == 0.9
    with pytest.raises(KeyError):
        res.value("pgd", "accuracy", 0.3)
    assert [c["name"] for c in res.failed_checks] == ["x"]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{not json", "cannot read"),
        ('{"schema": "other/1"}', "not a medrobust results file"),
        ("[1, 2]", "not a medrobust results file"),
        (json.dumps({"schema": SCHEMA, "rows": []}), "lacks"),
    ],
)
def test_corrupt_or_foreign_files(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "results.json"
    path.write_text(text)
    with pytest.raises(DataError, match=match) as err:
        Results.load(path)
    assert "\n" not in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="medrobust evaluate"):
        Results.load(tmp_path / "nope.json")


def test_malformed_rows(tmp_path: Path) -> None:
    doc = sample().to_dict()
    doc["rows"] = [{"threat": "clean"}]
    (tmp_path / "r.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match="malformed rows"):
        Results.load(tmp_path / "r.json")
