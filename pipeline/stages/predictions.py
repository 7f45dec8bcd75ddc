"""The predictions stage: the champion's label and confidence for every kept record.

Reads data/dedup/records.parquet and reports/champion.json (which version evaluate left as
`champion`); publishes data/predictions/predictions.parquet (id, rid, predicted_label,
predicted_confidence, model_version: a side file the store's readers join by id, see
pipeline/store/annotations.py) and reports/predictions.json. DVC re-runs it only when the
records or the champion change. The model reads each record as evaluate scored it: the
model's text mode and its context (a later turn followed by its session's first prompt).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline.config import require
from pipeline.errors import NotFoundError
from pipeline.io.atomic import atomic_path
from pipeline.io.reports import write_report
from pipeline.store.annotations import (
    MODEL_VERSION,
    PREDICTED_CONFIDENCE,
    PREDICTED_LABEL,
    PREDICTIONS,
)

REPORT = "predictions.json"
CHAMPION_FILE = "champion.json"  # written by evaluate (pipeline/stages/evaluate.py)
SCHEMA = pa.schema(
    [("id", pa.string()), ("rid", pa.int64()), (PREDICTED_LABEL, pa.string()),
     (PREDICTED_CONFIDENCE, pa.float64()), (MODEL_VERSION, pa.string())]
)  # fmt: skip


def run(cfg: Any, root: str | Path = ".") -> dict[str, Any]:
    """Predict every kept record with the champion evaluate named; publish; return the report."""
    started = time.perf_counter()
    root = Path(root)
    champion = read_champion(root / require(cfg, "paths.reports") / CHAMPION_FILE)
    records = _read_records(root / require(cfg, "paths.records"))
    if champion.get("version") is None:
        table = SCHEMA.empty_table()  # no champion: the columns read as NULL
        version = None
    else:
        from pipeline.predict.model import Predictor

        predictor = Predictor.load(cfg, str(champion["version"]), root=root, cached=True)
        version = predictor.version
        probs, _ = predictor.predict_proba(model_inputs(records, predictor.spec))
        best = probs.argmax(axis=1)
        table = pa.table(
            {"id": records["id"], "rid": records["rid"],
             PREDICTED_LABEL: [predictor.labels[i] for i in best],
             PREDICTED_CONFIDENCE: probs.max(axis=1).astype(float).round(6),
             MODEL_VERSION: [version] * len(best)},
            schema=SCHEMA,
        )  # fmt: skip
    import pyarrow.parquet as pq

    # One rename over the old file: a reader's join sees the old predictions or the new.
    with atomic_path(PREDICTIONS.under(root / require(cfg, "paths.store"))) as tmp:
        pq.write_table(table, tmp)
    report = _report(records, table, version, time.perf_counter() - started)
    write_report(root / require(cfg, "paths.reports"), REPORT, report)
    return report


def read_champion(path: Path) -> dict[str, Any]:
    """reports/champion.json: {name, version, run_id}; version None when there is none."""
    if not path.exists():
        raise NotFoundError(f"{path}: not found; run evaluate first (`dvc repro evaluate`)")
    return json.loads(path.read_text(encoding="utf-8"))


def _read_records(path: Path) -> dict[str, list[Any]]:
    import pyarrow.parquet as pq

    if not path.exists():
        raise NotFoundError(f"{path}: not found; run `dvc repro` first")
    present = pq.read_schema(path).names
    columns = ["id", "rid", "prompt", "response", "label"]
    columns += [c for c in ("session_id", "turn") if c in present]
    return pq.read_table(path, columns=columns).sort_by("rid").to_pydict()


def model_inputs(records: dict[str, list[Any]], spec: Any) -> list[str]:
    """Each record as the model reads it: evaluate's text mode and context (same functions)."""
    import pandas as pd

    from pipeline.embed import EmbedSettings, text_of
    from pipeline.train.context import first_prompts, with_context

    settings = EmbedSettings(text=spec.text)
    texts = [text_of(p, r, settings) for p, r in zip(records["prompt"], records["response"],
                                                      strict=True)]  # fmt: skip
    if spec.context == "none":
        return texts
    firsts = first_prompts(pd.DataFrame(records))
    sessions = records.get("session_id") or [None] * len(texts)
    return with_context(records["rid"], sessions, texts, firsts, spec.context)


def _report(
    records: dict[str, list[Any]], table: pa.Table, version: str | None, seconds: float
) -> dict[str, Any]:
    predicted = dict(zip(table["id"].to_pylist(), table[PREDICTED_LABEL].to_pylist(),
                         strict=True))  # fmt: skip
    labelled = [(i, lab) for i, lab in zip(records["id"], records["label"], strict=True) if lab]
    disagree = sum(1 for i, lab in labelled if i in predicted and predicted[i] != lab)
    counts: dict[str, int] = {}
    for label in predicted.values():
        counts[label] = counts.get(label, 0) + 1
    return {
        "model_version": version,
        "records": table.num_rows,
        "labelled": len(labelled),
        "disagreements": disagree,
        "predicted": dict(sorted(counts.items())),
        "seconds": round(seconds, 3),
    }
