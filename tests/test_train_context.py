"""A later turn read with its session's first prompt: train frames and evaluate splits agree."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipeline.errors import UserInputError
from pipeline.evaluate.data import load_splits
from pipeline.train.context import check_mode, first_prompts, with_context
from pipeline.train.data import DataSettings, labelled


def _records() -> pd.DataFrame:
    # s1: an unlabelled opening turn, then two labelled follow-ups; r4 stands alone; s2's
    # first kept turn is turn 2 (turn 1 was dropped as a duplicate, say).
    return pd.DataFrame(
        {
            "rid": [0, 1, 2, 3, 4],
            "id": ["a1", "a2", "a3", "b2", "c"],
            "prompt": ["write a quicksort", "make it shorter", "now in Go", "hi again", "alone"],
            "response": pd.Series([None] * 5, dtype="string"),
            "label": [None, "coding", "coding", "chat", "qa"],
            "session_id": ["s1", "s1", "s1", "s2", None],
            "turn": [1, 2, 3, 2, None],
        }
    )


def test_later_turns_read_the_first_prompt_even_when_it_is_unlabelled() -> None:
    frame, unlabelled = labelled(_records(), DataSettings(context="first_turn"), "records")
    assert unlabelled == 1
    inputs = dict(zip(frame["id"], frame["input"], strict=True))
    assert inputs == {
        "a2": "make it shorter\nwrite a quicksort",
        "a3": "now in Go\nwrite a quicksort",
        "b2": "hi again",  # the session's first kept turn reads itself only
        "c": "alone",  # no session
    }
    assert frame["text"].tolist() == ["make it shorter", "now in Go", "hi again", "alone"]


def test_no_context_means_the_text_alone() -> None:
    frame, _ = labelled(_records(), DataSettings(), "records")
    assert frame["input"].tolist() == frame["text"].tolist()
    assert with_context(["x"], ["s1"], ["t"], first_prompts(_records()), "none") == ["t"]


def test_evaluate_builds_the_same_inputs_as_train(tmp_path: Path) -> None:
    records = _records()
    records.to_parquet(tmp_path / "records.parquet", index=False)
    frame, _ = labelled(records, DataSettings(context="first_turn"), "records")
    split = frame[["id", "rid", "label"]].assign(split=["train", "test", "test", "val"])
    split.to_parquet(tmp_path / "split.parquet", index=False)
    splits = load_splits(
        tmp_path / "split.parquet", tmp_path / "records.parquet", "prompt", "first_turn"
    )
    assert splits["test"].inputs == ["now in Go\nwrite a quicksort", "hi again"]
    assert splits["test"].texts == ["now in Go", "hi again"]  # the baseline's, the mistakes'
    assert splits["train"].inputs == ["make it shorter\nwrite a quicksort"]


def test_an_unknown_mode_names_where_it_came_from() -> None:
    with pytest.raises(UserInputError, match=r"model\.context: context 'session'"):
        check_mode("session", "model.context")
