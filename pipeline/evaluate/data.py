"""Reading what the train stage published: models/meta.json and the split joined to records."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import NotFoundError, UserInputError

META_KEYS: tuple[str, ...] = ("model", "labels", "label_field", "text", "mlflow_run_id")
SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class SplitTexts:
    """One side of the split: ids, texts, label names and users, in rid order."""

    ids: list[str]
    texts: list[str]
    labels: list[str]
    users: list[str | None] = field(default_factory=list)  # to honour the erasure list

    def __len__(self) -> int:
        return len(self.ids)


def read_meta(models_dir: Path) -> dict[str, Any]:
    """models/meta.json, checked for the keys evaluation needs (unless training was skipped)."""
    path = models_dir / "meta.json"
    if not path.exists():
        raise NotFoundError(f"{path}: no trained model; run `dvc repro` (or `pipeline train`)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserInputError(f"{path}: line {exc.lineno}: invalid JSON: {exc.msg}") from exc
    if meta.get("status") == "skipped":  # the train stage had too few labels to train
        return meta
    missing = [k for k in META_KEYS if not meta.get(k)]
    if missing:
        raise UserInputError(f"{path}: missing key(s) {', '.join(missing)}; re-run train")
    return meta


def load_splits(split_path: Path, records_path: Path, text_mode: str) -> dict[str, SplitTexts]:
    """Join the split (rid, label, split) to the records' text; one SplitTexts per split."""
    import pyarrow.parquet as pq

    from pipeline.embed import EmbedSettings, text_of

    if text_mode not in ("prompt", "prompt_response"):
        raise UserInputError(
            f"models/meta.json: text {text_mode!r} is not one of prompt, prompt_response"
        )
    for path in (split_path, records_path):
        if not path.exists():
            raise NotFoundError(f"{path}: not found; run `dvc repro` first")
    split = pq.read_table(split_path, columns=["id", "rid", "label", "split"])
    columns = ["rid", "prompt", "response"]
    if "user_id" in pq.read_schema(records_path).names:
        columns.append("user_id")
    records = pq.read_table(records_path, columns=columns)
    joined = split.join(records, keys="rid", join_type="left outer").sort_by("rid")
    rows = joined.to_pylist()
    orphans = [r["id"] for r in rows if r["prompt"] is None]
    if orphans:
        raise UserInputError(
            f"{split_path}: {len(orphans)} record(s) (e.g. {orphans[0]!r}) are not in "
            f"{records_path}; the model is stale, re-run train (`dvc repro`)"
        )
    unknown = sorted({r["split"] for r in rows} - set(SPLITS))
    if unknown:
        raise UserInputError(f"{split_path}: column split has unknown value(s) {unknown}")
    settings = EmbedSettings(text=text_mode)
    out: dict[str, SplitTexts] = {}
    for name in SPLITS:
        part = [r for r in rows if r["split"] == name]
        out[name] = SplitTexts(
            ids=[r["id"] for r in part],
            texts=[text_of(r["prompt"], r["response"], settings) for r in part],
            labels=[r["label"] for r in part],
            users=[r.get("user_id") for r in part],
        )
    return out
