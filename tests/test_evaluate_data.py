"""Reading the train stage's outputs: meta.json checks and the split joined to records."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.errors import NotFoundError, UserInputError
from pipeline.evaluate.data import load_splits, read_meta


def _records(path: Path, rids: list[int]) -> None:
    table = pa.table(
        {
            "rid": pa.array(rids, pa.int64()),
            "prompt": [f"prompt {r}" for r in rids],
            "response": [f"response {r}" if r % 2 else None for r in rids],
        }
    )
    pq.write_table(table, path)


def _split(path: Path, rows: list[tuple[int, str, str]]) -> None:
    table = pa.table(
        {
            "id": [f"id{r}" for r, _, _ in rows],
            "rid": pa.array([r for r, _, _ in rows], pa.int64()),
            "label": [lab for _, lab, _ in rows],
            "split": [s for _, _, s in rows],
        }
    )
    pq.write_table(table, path)


def test_splits_join_texts_in_rid_order(tmp_path: Path) -> None:
    _records(tmp_path / "records.parquet", [5, 1, 2, 3, 4])
    _split(
        tmp_path / "split.parquet",
        [(3, "b", "test"), (1, "a", "test"), (2, "a", "train"), (4, "b", "val")],
    )
    splits = load_splits(
        tmp_path / "split.parquet", tmp_path / "records.parquet", "prompt_response"
    )
    assert splits["test"].ids == ["id1", "id3"]
    assert splits["test"].texts == ["prompt 1\nresponse 1", "prompt 3\nresponse 3"]
    assert splits["test"].labels == ["a", "b"]
    assert splits["train"].texts == ["prompt 2"]  # no response: the prompt alone
    assert len(splits["val"]) == 1


def test_stale_split_names_the_missing_record(tmp_path: Path) -> None:
    _records(tmp_path / "records.parquet", [1, 2])
    _split(tmp_path / "split.parquet", [(1, "a", "train"), (9, "b", "test")])
    with pytest.raises(UserInputError, match=r"'id9'.*re-run train"):
        load_splits(tmp_path / "split.parquet", tmp_path / "records.parquet", "prompt")


def test_bad_split_value_and_text_mode(tmp_path: Path) -> None:
    _records(tmp_path / "records.parquet", [1])
    _split(tmp_path / "split.parquet", [(1, "a", "holdout")])
    with pytest.raises(UserInputError, match="holdout"):
        load_splits(tmp_path / "split.parquet", tmp_path / "records.parquet", "prompt")
    with pytest.raises(UserInputError, match="text 'response'"):
        load_splits(tmp_path / "split.parquet", tmp_path / "records.parquet", "response")


def test_meta_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"meta\.json"):
        read_meta(tmp_path)
    (tmp_path / "meta.json").write_text('{"model": "x",\n oops}')
    with pytest.raises(UserInputError, match="line 2"):
        read_meta(tmp_path)
    (tmp_path / "meta.json").write_text(json.dumps({"model": "x", "labels": ["a"]}))
    with pytest.raises(UserInputError, match="label_field, text, mlflow_run_id"):
        read_meta(tmp_path)


def test_a_skipped_training_is_read_without_a_model(tmp_path: Path) -> None:
    """The train stage had too few labels: meta.json says so and has no labels to check."""
    skipped = {"status": "skipped", "reason": "no labelled records", "model": "linear_probe"}
    (tmp_path / "meta.json").write_text(json.dumps(skipped))
    assert read_meta(tmp_path) == skipped
    (tmp_path / "meta.json").write_text(json.dumps({**skipped, "status": "trained"}))
    with pytest.raises(UserInputError, match="missing key"):
        read_meta(tmp_path)
