"""Reading kept records into a frame the split and the models use; column addressing."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import NotFoundError, UserInputError

METADATA_PREFIX = "metadata."


@dataclass(frozen=True)
class DataSettings:
    """What the models learn from: the label column and the text of a record."""

    label_field: str = "label"  # a record field or `metadata.<key>`
    text: str = "prompt"  # prompt | prompt_response (the embed setting, so the cache is shared)
    context: str = "none"  # none | first_turn: what else a model reads (pipeline/train/context.py)


def column_values(frame: pd.DataFrame, name: str, source: str = "records") -> pd.Series:
    """The values of a record field or of `metadata.<key>` (JSON text), as a Series."""
    if name.startswith(METADATA_PREFIX):
        key = name[len(METADATA_PREFIX) :]
        if "metadata" not in frame.columns:
            raise UserInputError(f"{source}: no metadata column, so {name!r} cannot be read")
        parsed = frame["metadata"].map(_parse_metadata)
        return parsed.map(lambda meta: _scalar(meta.get(key))).rename(name)
    if name not in frame.columns:
        known = ", ".join(sorted(str(c) for c in frame.columns))
        raise UserInputError(
            f"{source}: column {name!r} does not exist (columns: {known}; "
            f"metadata keys are addressed as 'metadata.<key>')"
        )
    return frame[name]


def _parse_metadata(text: Any) -> dict[str, Any]:
    if isinstance(text, dict):
        return text
    if text is None or (isinstance(text, float) and pd.isna(text)) or text == "":
        return {}
    value = json.loads(text)
    return value if isinstance(value, dict) else {}


def _scalar(value: Any) -> Any:
    # Lists and dicts become stable strings so they can serve as group keys.
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True)
    return value


def texts_of(frame: pd.DataFrame, text: str) -> list[str]:
    """The model input text of each row, as `pipeline.embed.text_of` defines it."""
    from pipeline.embed import EmbedSettings, text_of

    settings = EmbedSettings(text=text)
    responses = frame["response"] if "response" in frame.columns else [None] * len(frame)
    return [
        text_of(str(p), None if r is None or pd.isna(r) else str(r), settings)
        for p, r in zip(frame["prompt"], responses, strict=True)
    ]


def read_records(path: str | Path) -> pd.DataFrame:
    """Read `records.parquet` (RECORD_SCHEMA), sorted by rid for determinism."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"{path}: no kept records yet; run `pipeline dedup` (or `dvc repro`)")
    frame = pq.read_table(path).to_pandas()
    for required in ("rid", "id", "prompt"):
        if required not in frame.columns:
            raise UserInputError(f"{path}: column {required!r} is missing")
    return frame.sort_values("rid", kind="stable").reset_index(drop=True)


def labelled(frame: pd.DataFrame, settings: DataSettings, source: str) -> tuple[pd.DataFrame, int]:
    """Rows with a label (as a string in `label`), their `text` and the model's `input` (the
    text with its conversation context, `settings.context`); also the unlabelled count.

    Missing, null, empty and blank values all mean "unlabelled" (logs carry no label). An
    unlabelled first turn still gives its session's later turns their context.
    """
    from pipeline.train.context import first_prompts, with_context

    labels = column_values(frame, settings.label_field, source)
    keep = labels.notna() & (labels.astype(str).str.strip().str.len() > 0)
    out = frame.loc[keep].copy()
    out["label"] = labels[keep].astype(str)
    out["text"] = texts_of(out, settings.text)
    sessions = out["session_id"] if "session_id" in out.columns else [None] * len(out)
    firsts = first_prompts(frame) if settings.context != "none" else {}
    out["input"] = with_context(out["rid"], sessions, out["text"], firsts, settings.context)
    return out.reset_index(drop=True), int((~keep).sum())


def balanced_class_weights(labels: np.ndarray, num_labels: int) -> np.ndarray:
    """n / (k * count) per class (scikit-learn's 'balanced'); absent classes get weight 0."""
    counts = np.bincount(labels, minlength=num_labels).astype(np.float64)
    present = counts > 0
    weights = np.zeros(num_labels, dtype=np.float32)
    weights[present] = len(labels) / (present.sum() * counts[present])
    return weights
