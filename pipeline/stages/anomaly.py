"""The anomaly stage: kept records -> cached embeddings -> autoencoder -> scores + report.

Reads data/dedup/records.parquet; publishes data/anomaly/scores.parquet (id, rid,
anomaly_score; a side file the store's readers join by record id, see
pipeline/store/annotations.py) and reports/anomaly.json. It never writes another stage's
outputs, so after `dvc repro` every stage is up to date.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.anomaly.settings import AnomalySettings
from pipeline.config import require
from pipeline.errors import NotFoundError
from pipeline.io.atomic import atomic_path
from pipeline.io.reports import write_report
from pipeline.store.annotations import ANOMALY, SCORE

REPORT = "anomaly.json"
QUANTILES = (0.5, 0.9, 0.99)
DIGITS = 4  # the metric file's precision: the same data and params give the same file


def run(cfg: Any, root: str | Path = ".") -> dict[str, Any]:
    """Embed (cache), fit, score every kept record, publish; return the report."""
    from pipeline.embed import EmbedSettings, embed_texts, text_of

    started = time.perf_counter()
    root = Path(root)
    settings = AnomalySettings.from_cfg(require(cfg, "anomaly"), int(require(cfg, "seed")))
    embed = EmbedSettings.from_cfg(require(cfg, "embed"))
    records_path = root / require(cfg, "paths.records")
    frame = read_kept(records_path)
    texts = [text_of(p, r, embed) for p, r in zip(frame["prompt"], frame["response"], strict=True)]
    vectors = embed_texts(texts, embed, cache_dir=root / require(cfg, "paths.embed_cache"))
    embed_seconds = time.perf_counter() - started

    lineage = _lineage(cfg, root, records_path)
    logger, fitted = _fit(cfg, root, lineage, settings, vectors)
    out = pd.DataFrame({"id": frame["id"], "rid": frame["rid"], SCORE: fitted.scores})
    # Where the store's readers look: data/anomaly/ beside data/dedup/ (annotations.py).
    # One rename over the old file: a reader's join (it reads the path at each query) sees
    # the old scores or the new, never no file, as a directory swap would leave for a moment.
    with atomic_path(ANOMALY.under(root / require(cfg, "paths.store"))) as tmp:
        out.to_parquet(tmp, index=False)
    report = {
        "model": settings.name,
        "records": len(out),
        "epochs": len(fitted.losses),
        "final_loss": _round(fitted.losses[-1]) if fitted.losses else None,
        "score": summarise(fitted.scores),
        "strangest": out.nlargest(5, SCORE)["id"].tolist(),
        "embed_seconds": round(embed_seconds, 3),
        "fit_seconds": round(fitted.seconds, 3),
        "data_hash": lineage.data_hash,
        "pipeline_run": lineage.pipeline_run,
    }
    if logger is not None:
        from pipeline.anomaly.tracking import log_result

        report["mlflow_run_id"] = log_result(logger, lineage, settings.name, report, fitted.net)
    report["seconds"] = round(time.perf_counter() - started, 3)
    write_report(root / require(cfg, "paths.reports"), REPORT, report)
    return report


def _fit(
    cfg: Any, root: Path, lineage: Any, settings: AnomalySettings, vectors: np.ndarray
) -> tuple[Any, Any]:
    """(the MLflow logger, the fit); nothing kept: no run, and no scores to publish."""
    from pipeline.anomaly.fit import AnomalyFit, fit_scores  # imports Lightning (~10 s)
    from pipeline.anomaly.tracking import open_logger

    if not len(vectors):  # an empty side file: readers see no scores rather than stale ones
        return None, AnomalyFit(net=None, scores=np.zeros(0))
    logger = open_logger(_tracking(cfg), root, lineage, settings.name)
    try:
        return logger, fit_scores(vectors, settings, logger)
    except BaseException:
        logger.finalize("failed")  # the run says it failed, rather than running forever
        raise


def read_kept(records_path: Path) -> pd.DataFrame:
    """id, rid, prompt and response of every kept record, in rid order."""
    if not records_path.exists():
        raise NotFoundError(f"{records_path}: no kept records yet; run `pipeline dedup` first")
    frame = pd.read_parquet(records_path, columns=["id", "rid", "prompt", "response"])
    return frame.sort_values("rid", kind="stable").reset_index(drop=True)


def summarise(scores: np.ndarray) -> dict[str, float | None]:
    """Mean, quantiles and maximum of the scores, rounded for a stable metric file."""
    if not len(scores):
        return {"mean": None, **{f"p{round(q * 100)}": None for q in QUANTILES}, "max": None}
    out = {"mean": _round(float(np.mean(scores)))}
    for q in QUANTILES:
        out[f"p{round(q * 100)}"] = _round(float(np.quantile(scores, q)))
    out["max"] = _round(float(np.max(scores)))
    return out


def _round(value: float) -> float:
    return round(float(value), DIGITS)


def _tracking(cfg: Any) -> Any:
    from pipeline.tracking import TrackingSettings

    return TrackingSettings.from_cfg(require(cfg, "tracking"))


def _lineage(cfg: Any, root: Path, records: Path) -> Any:
    """What ties the run to its inputs: the records' DVC hash, the commit, the execution id."""
    from omegaconf import OmegaConf

    from pipeline.tracking import git_commit, pipeline_run
    from pipeline.train.tracking import Lineage, file_md5

    config = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else dict(cfg)
    data_hash = file_md5(records) if records.exists() else ""
    commit = git_commit(root)
    return Lineage(records, data_hash, commit, pipeline_run(commit, data_hash, config), config)
