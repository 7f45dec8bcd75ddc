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
    texts: list[str]  # the records' own text (the baseline's input, quoted in mistakes)
    labels: list[str]
    users: list[str | None] = field(default_factory=list)  # to honour the erasure list
    inputs: list[str] = field(default_factory=list)  # the model's: text + context (meta)

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


def load_splits(
    split_path: Path, records_path: Path, text_mode: str, context: str = "none"
) -> dict[str, SplitTexts]:
    """Join the split (rid, label, split) to the records' text; one SplitTexts per split."""
    import pyarrow.parquet as pq

    from pipeline.embed import EmbedSettings, text_of
    from pipeline.train.context import check_mode, first_prompts, with_context

    if text_mode not in ("prompt", "prompt_response"):
        raise UserInputError(
            f"models/meta.json: text {text_mode!r} is not one of prompt, prompt_response"
        )
    for path in (split_path, records_path):
        if not path.exists():
            raise NotFoundError(f"{path}: not found; run `dvc repro` first")
    check_mode(context, "models/meta.json")
    split = pq.read_table(split_path, columns=["id", "rid", "label", "split"])
    present = pq.read_schema(records_path).names
    columns = ["rid", "prompt", "response"]
    columns += [c for c in ("user_id", "session_id", "turn") if c in present]
    records = pq.read_table(records_path, columns=columns)
    # Every kept record, not only the split's: an unlabelled first turn is context too.
    firsts = first_prompts(records.to_pandas()) if context != "none" else {}
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
        texts = [text_of(r["prompt"], r["response"], settings) for r in part]
        sessions = [r.get("session_id") for r in part]
        rids = [r["rid"] for r in part]
        out[name] = SplitTexts(
            ids=[r["id"] for r in part],
            texts=texts,
            labels=[r["label"] for r in part],
            users=[r.get("user_id") for r in part],
            inputs=with_context(rids, sessions, texts, firsts, context),
        )
    return out
