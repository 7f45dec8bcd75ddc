"""`pipeline runs --kind retrieval`: the retrieval stage's runs, newest first, what changed
(encoder, fusion, index) beside what it did to recall, MRR and nDCG."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pipeline.runs.store import Store

STAGE = "retrieval"
# row key -> run param (the settings a change of which the figures should show)
PARAMS = {
    "encoder": "embed.model",
    "fusion": "search.fusion",
    "alpha": "search.alpha",
    "index": "index.factory",
    "diversity": "search.diversity",
}
# header, width, row key, format: hybrid on each query set, then its latency
COLUMNS = (
    ("run", 8, "run_id", "s"),
    ("started (UTC)", 16, "started", "s"),
    ("encoder", 18, "encoder", "s"),
    ("fusion", 6, "fusion", "s"),
    ("alpha", 5, "alpha", "s"),
    ("index", 8, "index", "s"),
    ("boot R@10", 9, "bootstrap.hybrid.recall_at_10", ".3f"),
    ("boot nDCG", 9, "bootstrap.hybrid.ndcg_at_10", ".3f"),
    ("judged R@10", 11, "judged.hybrid.recall_at_10", ".3f"),
    ("judged nDCG", 11, "judged.hybrid.ndcg_at_10", ".3f"),
    ("judged ctx", 10, "judged.context_recall", ".3f"),
    ("p50 ms", 6, "time.latency_ms.bootstrap.hybrid.p50", ".1f"),
)


def retrieval_runs(store: Store, limit: int | None = None) -> list[dict[str, Any]]:
    """One row per retrieval run: its settings and every metric it logged, newest first."""
    experiment = store.client.get_experiment_by_name(store.experiment)
    if experiment is None:
        return []
    runs = store.client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.stage = '{STAGE}'",
        max_results=limit or 1000, order_by=["attributes.start_time DESC"],
    )  # fmt: skip
    rows = []
    for run in runs:
        params = run.data.params
        started = datetime.fromtimestamp(run.info.start_time / 1000, UTC)
        rows.append(
            {
                "run_id": run.info.run_id,
                "started": started.isoformat(timespec="seconds"),
                **{key: params.get(name) for key, name in PARAMS.items()},
                **run.data.metrics,
            }
        )
    return rows


def format_table(rows: Sequence[dict[str, Any]], where: str) -> str:
    """The retrieval runs for a terminal: the hybrid figures of each query set."""
    if not rows:
        return f"no retrieval runs in {where}: run `pipeline retrieval` (or `dvc repro`)"
    lines = ["  ".join(h.ljust(w) if f == "s" else h.rjust(w) for h, w, _, f in COLUMNS)]
    for r in rows:
        cells = []
        for _, width, key, fmt in COLUMNS:
            value = r.get(key)
            text = "-" if value is None else (str(value) if fmt == "s" else format(value, fmt))
            text = text.replace("T", " ")[:width] if fmt == "s" else text
            cells.append(text.ljust(width) if fmt == "s" else text.rjust(width))
        lines.append("  ".join(cells).rstrip())
    lines.append("R@10 / nDCG: hybrid search's recall@10 / nDCG@10 (every variant: --json)")
    lines.append("ctx: context recall, judged records cited in `pipeline rag`'s context")
    return "\n".join(lines)
