"""The retrieval stage: every search variant on the judged queries and the bootstrap set.

Reads the published index and store, data/judgments.parquet (the snapshot of relevance
grades `pipeline stats feedback` writes) and the kept records the bootstrap queries come
from. Writes reports/retrieval.json (recall@k, MRR@k, nDCG@k per variant and query set:
a DVC metric, so a change of encoder, fusion or index shows in `dvc metrics diff`),
reports/run/retrieval.json (latency percentiles, seconds) and an MLflow run tagged
`stage=retrieval` with both. Each query set also gets `context_recall`: how often its
relevant records are cited in the context `pipeline rag` builds for the query (conf/rag/,
pipeline/retrieval/context.py). It publishes nothing else.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pipeline.config import require
from pipeline.io.reports import write_report

REPORT = "retrieval.json"


def run(cfg: Any, root: str | Path = ".") -> dict[str, Any]:
    """Evaluate, write the report, log the run; return the report."""
    import pandas as pd

    from pipeline.retrieval.bootstrap import bootstrap_queries, judged_queries
    from pipeline.retrieval.context import context_figures, describe, rag_settings
    from pipeline.retrieval.evaluate import evaluate, variants_from_cfg
    from pipeline.retrieval.metrics import relevant
    from pipeline.search.project import open_from_config

    started = time.perf_counter()
    root = Path(root)
    settings = require(cfg, "retrieval")
    k, grade = int(settings["k"]), float(settings["relevant_grade"])
    variants = variants_from_cfg(settings["variants"])
    rag = rag_settings(require(cfg, "rag"))  # a bad conf/rag/ fails before any search
    judged = judged_queries(_judgments(root / require(cfg, "paths.judgments")))
    answerable = [q for q in judged if relevant(q.grades, grade)]
    records = pd.read_parquet(root / require(cfg, "paths.records"), columns=["id", "prompt"])
    records = records.sort_values("id", kind="stable")
    boot = bootstrap_queries(
        records["id"].tolist(), records["prompt"].tolist(),
        int(settings["bootstrap_queries"]), int(require(cfg, "seed")),
    )  # fmt: skip
    searcher = open_from_config(root, cfg)
    try:
        report: dict[str, Any] = {"k": k, "relevant_grade": grade, "latency_ms": {}}
        for name, queries, extra in (
            ("judged", answerable, {"judged_queries": len(judged)}),
            ("bootstrap", boot, {}),
        ):
            report[name] = {"queries": len(queries), **extra}
            if queries:  # no figures rather than zeros for a set that is empty
                metrics, latency = evaluate(searcher, queries, variants, k, grade)
                report[name].update(metrics)
                report["latency_ms"][name] = latency
                sample = queries[: int(settings["context_queries"])]
                if sample:
                    context, took = context_figures(searcher, sample, rag, grade)
                    report[name].update(context, context_queries=len(sample))
                    report["latency_ms"][name]["rag_context"] = took
    finally:
        searcher.close()
    settings_used = searcher.settings  # the code's defaults where params.yaml is silent
    report["search"] = {key: getattr(settings_used, key) for key in _FUSION_KEYS}
    report["rag"] = describe(rag)
    report["seconds"] = round(time.perf_counter() - started, 3)
    report["mlflow_run_id"] = _log(cfg, root, report, asdict(settings_used))
    write_report(root / require(cfg, "paths.reports"), REPORT, report)
    return report


# The search settings the figures depend on, repeated in the metric file so a diff shows why.
_FUSION_KEYS = ("fusion", "alpha", "normalization", "rrf_k", "candidates", "mmr_lambda")


def _judgments(path: Path) -> list[dict[str, Any]]:
    """The snapshot's rows; none before anyone judged (the file is made on first snapshot)."""
    if not path.exists():
        return []
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


def _log(cfg: Any, root: Path, report: dict[str, Any], search: dict[str, Any]) -> str:
    from pipeline.retrieval.tracking import log_run

    return log_run(cfg, root, report, search)
