"""The curation-step seam: steps come from config (`dedup.steps` + `_target_` sections), run
in config order over what the steps before them kept, and the report and its accounting
count every step. The step used here lives in tests/helpers, outside pipeline/."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pytest
from omegaconf import OmegaConf

from pipeline.config import compose
from pipeline.dedup.steps import Decisions, Survivors, build_steps, run_steps
from pipeline.errors import UserInputError
from pipeline.stages.dedup import run

ROWS = [
    {"id": "a", "prompt": "How do I reset my password?", "response": "Use the link.", "quality": 2},
    {"id": "b", "prompt": "how do I  RESET my password?", "response": "use the link.",
     "quality": 5},  # exact duplicate of a, better quality
    {"id": "e", "prompt": "The quick brown fox jumps over the lazy dog near the river bank "
     "today and tomorrow and the day after", "response": "fine"},
    {"id": "f", "prompt": "The quick brown fox jumps over the lazy dog near the river bank "
     "today and tomorrow and the day after that", "response": "fine"},  # near e
    {"id": "g", "prompt": "How can I bake bread?", "response": "flour"},  # first word of b
    {"id": "h", "prompt": "Tell me a joke", "response": "no"},
]  # fmt: skip
FIRST_WORD = "+dedup.first_word._target_=helpers.steps.FirstWordDedup"


def stage(tmp_path: Path, *overrides: str) -> dict:
    raw = tmp_path / "raw" / "a.jsonl"
    raw.parent.mkdir(parents=True)
    raw.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    cfg = compose([f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
                   "dedup.near.threshold=0.7", *overrides])  # fmt: skip
    cfg.data.path = str(raw.parent)
    return run(cfg, tmp_path)


def methods(tmp_path: Path) -> dict[str, tuple[str, str]]:
    con = duckdb.connect(str(tmp_path / "data" / "dedup" / "store.duckdb"), read_only=True)
    try:
        rows = con.execute("SELECT id, method, duplicate_of FROM duplicates").fetchall()
    finally:
        con.close()
    return {i: (m, of) for i, m, of in rows}


def test_a_step_added_by_config_alone_is_run_stored_and_accounted(tmp_path: Path) -> None:
    report = stage(tmp_path, FIRST_WORD, "dedup.steps=[exact,near,first_word]")
    steps = report["steps"]
    assert list(steps) == ["exact", "near", "first_word"]
    assert [steps[s]["input"] for s in steps] == [6, 5, 4]  # each sees what the last kept
    assert steps["first_word"] == {"input": 4, "dropped": 1, "kept": 3,
                                   "by_reason": {"first_word": 1}}  # fmt: skip
    assert (report["exact_duplicates"], report["near_duplicates"], report["kept"]) == (1, 1, 3)
    check = report["accounting"]
    assert check["equation"] == (
        "input_records = kept + steps.exact.dropped + steps.near.dropped"
        " + steps.first_word.dropped + filtered.total + rejected.total + erased"
    )
    assert check["holds"] and check["sum"] == 6
    assert methods(tmp_path) == {"a": ("exact", "b"), "f": ("near", "e"), "g": ("first_word", "b")}
    assert "first_word" in report["seconds"]


def test_steps_run_in_config_order(tmp_path: Path) -> None:
    report = stage(tmp_path, FIRST_WORD, "dedup.steps=[first_word,exact,near]")
    dropped = {name: step["dropped"] for name, step in report["steps"].items()}
    assert dropped == {"first_word": 3, "exact": 0, "near": 0}  # it took a, f and g first
    assert report["kept"] == 3 and report["accounting"]["holds"]
    assert report["near_duplicates"] == 0
    assert methods(tmp_path) == {
        "a": ("first_word", "b"), "f": ("first_word", "e"), "g": ("first_word", "b")
    }  # fmt: skip


def test_a_disabled_step_is_left_out_of_the_report_and_the_equation(tmp_path: Path) -> None:
    report = stage(tmp_path, "dedup.near.enabled=false")
    assert list(report["steps"]) == ["quality", "exact"] and report["near_duplicates"] == 0
    assert "near" not in report["accounting"]["equation"] and report["accounting"]["holds"]


def dedup_cfg(**extra: object) -> dict:
    cfg = OmegaConf.to_container(compose().dedup)
    assert isinstance(cfg, dict)
    return {**cfg, **extra}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"steps": ["exact", "exact"]}, r"names a step twice"),
        ({"steps": ["exact", "nope"]}, r"'nope' needs a section dedup\.nope with _target_"),
        ({"exact": {"_target_": "pipeline.dedup.steps.exact.ExactDedup", "fields": ["x"]}},
         r"dedup\.exact: fields: \['x'\] not in"),
        ({"near": {"_target_": "pipeline.dedup.steps.near.NearDedup", "ngram": 0}},
         r"dedup\.near: .*ngram"),
        ({"exact": {"_target_": "collections.OrderedDict"}}, r"OrderedDict is not a Step"),
        ({"exact": {"_target_": "no.such.Step"}}, r"dedup\.exact: "),
    ],
)  # fmt: skip
def test_bad_step_config_names_the_key(extra: dict, message: str) -> None:
    with pytest.raises(UserInputError, match=message):
        build_steps(dedup_cfg(**extra))


class DropsTwice:
    def decide(self, survivors: Survivors) -> Decisions:
        idx = np.array([1, 1], np.int64)
        return Decisions(idx, np.zeros(2, np.int64), np.ones(2), "twice")


class DropsTheDropped:
    def decide(self, survivors: Survivors) -> Decisions:
        return Decisions(np.array([0]), np.array([2]), np.ones(1), "again")


def test_a_step_cannot_drop_a_record_twice_or_one_already_dropped() -> None:
    rank = np.arange(3, dtype=np.int64)
    with pytest.raises(ValueError, match="'twice': drops a record twice"):
        run_steps({"twice": DropsTwice()}, rank, lambda idx, fields: [])  # type: ignore[dict-item]
    first = {"first": DropsTheDropped(), "again": DropsTheDropped()}
    with pytest.raises(ValueError, match="'again': drops a record twice or one not kept"):
        run_steps(first, rank, lambda idx, fields: [])  # type: ignore[arg-type]
