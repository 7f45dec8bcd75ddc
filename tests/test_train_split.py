"""The train/val/test split: deterministic, leakage-free, and strict about bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.errors import UserInputError
from pipeline.train.data import DataSettings, column_values, labelled
from pipeline.train.split import (
    SplitSettings,
    TooFewLabels,
    assign_splits,
    leaks,
    split_counts,
)


def make_frame(n: int, seed: int = 0, sessions: int = 0, users: int = 0) -> pd.DataFrame:
    """n labelled records with optional sessions, users and a metadata source."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "rid": rng.choice(2**62, size=n, replace=False).astype(np.int64),
            "id": [f"r{i}" for i in range(n)],
            "prompt": [f"prompt number {i}" for i in range(n)],
            "response": [None] * n,
            "label": [("a", "b", "c")[i % 3] for i in range(n)],
            "session_id": [f"s{rng.integers(sessions)}" if sessions else None for _ in range(n)],
            "user_id": [f"u{rng.integers(users)}" if users else None for _ in range(n)],
            "parent_id": [None] * n,
            "metadata": [json.dumps({"source_dataset": f"ds{i % 7}"}) for i in range(n)],
        }
    )
    return frame


@st.composite
def frames(draw: st.DrawFn) -> tuple[pd.DataFrame, SplitSettings]:
    n = draw(st.integers(30, 200))
    frame = make_frame(
        n,
        seed=draw(st.integers(0, 10_000)),
        sessions=draw(st.integers(0, n)),
        users=draw(st.integers(0, 40)),
    )
    # Conversations: some records point at an earlier record as their parent turn.
    parents = draw(st.lists(st.tuples(st.integers(1, n - 1), st.integers(0, n - 1)), max_size=20))
    for child, parent in parents:
        frame.loc[child, "parent_id"] = f"r{min(parent, child - 1)}"
    group_by = draw(st.sampled_from([(), ("user_id",), ("metadata.source_dataset",)]))
    split_settings = SplitSettings(
        seed=draw(st.integers(0, 2**31)),
        val_fraction=draw(st.sampled_from([0.1, 0.2])),
        test_fraction=draw(st.sampled_from([0.1, 0.25])),
        group_by=group_by,
    )
    return frame, split_settings


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames(), st.randoms())
def test_split_is_leakage_free_and_ignores_row_order(case, rnd) -> None:
    frame, split_settings = case
    try:
        split = assign_splits(frame, split_settings)
    except UserInputError as exc:
        # Few large groups can leave a split empty: that must be reported, never ignored.
        assert "split is empty" in str(exc)
        return
    assert set(split["split"]) == {"train", "val", "test"}
    assert leaks(split, ["session_id", *split_settings.group_by]) == {
        name: 0 for name in ["session_id", *split_settings.group_by]
    }
    side = dict(zip(split["id"], split["split"], strict=True))
    for child, parent in zip(split["id"], split["parent_id"], strict=True):
        if parent is not None:
            assert side[child] == side[parent]
    order = list(range(len(frame)))
    rnd.shuffle(order)
    shuffled = assign_splits(frame.iloc[order].reset_index(drop=True), split_settings)
    assert dict(zip(shuffled["rid"], shuffled["split"], strict=True)) == dict(
        zip(split["rid"], split["split"], strict=True)
    )


def test_fractions_are_close_to_config_for_singleton_groups() -> None:
    split = assign_splits(make_frame(1000), SplitSettings(val_fraction=0.1, test_fraction=0.2))
    assert split_counts(split) == {"train": 700, "val": 100, "test": 200}


def test_seed_changes_the_split_and_is_reproducible() -> None:
    frame = make_frame(300)
    one = assign_splits(frame, SplitSettings(seed=1))["split"].tolist()
    assert one == assign_splits(frame, SplitSettings(seed=1))["split"].tolist()
    assert one != assign_splits(frame, SplitSettings(seed=2))["split"].tolist()


def test_holdout_groups_go_whole_to_test_and_alone() -> None:
    frame = make_frame(210)
    cfg = {"holdout_groups": {"column": "metadata.source_dataset", "values": ["ds3", "ds5"]}}
    split = assign_splits(frame, SplitSettings.from_cfg(cfg, seed=3))
    source = column_values(split, "metadata.source_dataset")
    assert set(source[split["split"] == "test"]) == {"ds3", "ds5"}
    assert (split.loc[source.isin(["ds3", "ds5"]), "split"] == "test").all()
    assert split_counts(split)["val"] == 21


def test_group_by_metadata_key_keeps_sources_together() -> None:
    split = assign_splits(
        make_frame(700), SplitSettings(group_by=("metadata.source_dataset",), test_fraction=0.2)
    )
    assert leaks(split, ["metadata.source_dataset"]) == {"metadata.source_dataset": 0}


def test_missing_label_column_is_a_clear_error() -> None:
    frame = make_frame(50)
    with pytest.raises(UserInputError, match=r"column 'task' does not exist"):
        assign_splits(frame, SplitSettings(label_field="task"))
    with pytest.raises(UserInputError, match=r"'metadata.task'"):
        labelled(frame.drop(columns="metadata"), DataSettings(label_field="metadata.task"), "x")


def test_one_class_is_a_clear_error() -> None:
    frame = make_frame(50).assign(label="only")
    with pytest.raises(TooFewLabels, match=r"label field 'label' has 1 distinct value") as exc:
        assign_splits(frame, SplitSettings())
    assert exc.value.reason == "too few classes" and exc.value.exit_code == 2


def test_empty_split_is_a_clear_error() -> None:
    frame = make_frame(40, sessions=1)  # one session: everything must land on one side
    with pytest.raises(TooFewLabels, match=r"split is empty") as exc:
        assign_splits(frame, SplitSettings())
    assert exc.value.reason == "too few labelled records"
    with pytest.raises(TooFewLabels, match=r"val split is empty \(4 labelled records"):
        assign_splits(make_frame(4), SplitSettings())  # 10% of 4 rounds to no val (or test) record


def test_a_zero_fraction_is_the_configs_fault_not_the_datas() -> None:
    with pytest.raises(UserInputError, match=r"the val split is empty") as exc:
        assign_splits(make_frame(100), SplitSettings(val_fraction=0.0))
    assert not isinstance(exc.value, TooFewLabels)


def test_unlabelled_rows_do_not_move_the_labelled_rows_between_splits() -> None:
    """The split is made on the labelled rows only: adding unlabelled rows (sharing
    sessions, replying to labelled turns, with smaller rids) changes no labelled row's side."""
    base = make_frame(150, seed=3, sessions=60)
    extra = make_frame(300, seed=4, sessions=60).assign(label=None)
    extra["id"] = [f"u{i}" for i in range(len(extra))]
    extra["rid"] = extra["rid"] // 2  # interleaved with (and often below) the labelled rids
    extra["parent_id"] = base["id"].sample(len(extra), replace=True, random_state=0).to_numpy()
    alone, none_unlabelled = labelled(base, DataSettings(), "records")
    mixed, unlabelled = labelled(pd.concat([extra, base]), DataSettings(), "records")
    assert (none_unlabelled, unlabelled, len(mixed)) == (0, 300, 150)
    settings = SplitSettings(near_dup_threshold=0.5)
    before = assign_splits(alone, settings).set_index("id")["split"]
    after = assign_splits(mixed, settings).set_index("id")["split"]
    assert after.sort_index().equals(before.sort_index())
    assert set(before) == {"train", "val", "test"}


def test_bad_split_config_is_a_clear_error() -> None:
    with pytest.raises(UserInputError, match=r"split.val_fractio"):
        SplitSettings.from_cfg({"val_fractio": 0.2})
    with pytest.raises(UserInputError, match=r"must be below 1"):
        SplitSettings.from_cfg({"val_fraction": 0.5, "test_fraction": 0.5})
    with pytest.raises(UserInputError, match=r"no record has metadata.source_dataset"):
        cfg = {"holdout_groups": {"column": "metadata.source_dataset", "values": ["nope"]}}
        assign_splits(make_frame(30), SplitSettings.from_cfg(cfg))


def test_labelled_drops_unlabelled_rows_and_reads_metadata_labels() -> None:
    frame = make_frame(9)
    frame.loc[0, "label"] = None
    frame.loc[1, "label"] = ""
    frame.loc[2, "label"] = "  "  # blank: unlabelled too
    kept, unlabelled = labelled(frame, DataSettings(), "records")
    assert (len(kept), unlabelled) == (6, 3)
    by_source, _ = labelled(frame, DataSettings(label_field="metadata.source_dataset"), "records")
    assert by_source["label"].tolist()[:3] == ["ds0", "ds1", "ds2"]
    assert by_source["text"].tolist()[0] == "prompt number 0"


def test_near_duplicates_are_kept_on_one_side() -> None:
    minhash = pytest.importorskip("pipeline.dedup.minhash")
    del minhash
    frame = make_frame(120)
    base = "the quick brown fox jumps over the lazy dog near the river bank today"
    # Ten near-copies of one sentence (one word changed) must not straddle splits.
    for i in range(10):
        frame.loc[i * 11, "prompt"] = base.replace("today", f"day{i}")
    frame["text"] = frame["prompt"]
    cfg = {"near_dup_threshold": 0.5}
    split = assign_splits(frame, SplitSettings.from_cfg(cfg, near_dup={"ngram": 3, "seed": 1}))
    assert split.loc[[i * 11 for i in range(10)], "split"].nunique() == 1
