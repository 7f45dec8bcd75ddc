"""Filter benchmark: a metadata filter's cost at 10% and 1% selectivity beside a built-in
field's, as the platform's pre-filter and as a post-filter peer, in one run.

    python benchmarks/filters.py [--n 100000] [--queries 100] [--no-append]

Synthetic, n=100,000 (not t0, to stay near ~10 min on the shared 2-core machine, the HNSW
build most of it): n clustered 384-d vectors in an HNSW index (the factory `auto` picks
above 50,000 records); each record carries built-in
columns (label 10%, source 1%) and a JSON `metadata` with independently drawn keys
(tier 10%, app_version 1% as a number, plus keys that match nothing), the way teams log.
Per filter: the DuckDB evaluation alone (filter cache cleared every query), the whole
vector search with the filter uncached and cached, and recall@10 against exact search
over the allowed records. Peer: the same filter as a post-filter (the unfiltered top 100,
then the hits the filter allows, the membership test free), which is what a search
without a pre-filter does. Appends to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "tests"))

from helpers.store import write_records_store  # noqa: E402
from results import append_section, offline  # noqa: E402
from search import K, clustered, exact_topk, pct  # noqa: E402

from pipeline.index.build import publish_index  # noqa: E402
from pipeline.index.factory import IndexSettings  # noqa: E402
from pipeline.record import RECORD_SCHEMA  # noqa: E402
from pipeline.search.api import Searcher, SearchSettings  # noqa: E402
from pipeline.search.filters import as_conditions  # noqa: E402
from pipeline.store.db import snapshot_cursor  # noqa: E402
from pipeline.store.scope import Scope  # noqa: E402
from pipeline.store.search import matching_rids  # noqa: E402

FILTERS = {
    "10%": ["label=sel10", "metadata.tier=gold", "metadata.tier=gold OR metadata.locale=zz"],
    "1%": ["source=sel1", "metadata.app_version=2.1", "NOT metadata.app_version!=2.1"],
}
POST_K = 100  # hits a post-filter fetches before filtering


def build(root: Path, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, pa.Table]:
    """A store and a published HNSW index of n records; (vectors, rids, table)."""
    rng = np.random.default_rng(seed)
    vectors = clustered(n, 384, seed)
    rids = np.arange(1, n + 1, dtype=np.int64) * 7919
    draw = [rng.random(n) for _ in range(4)]
    metadata = [
        json.dumps(
            {
                "tier": "gold" if draw[2][i] < 0.10 else "free",
                "app_version": 2.1 if draw[3][i] < 0.01 else 2.0,
                "model": "m-large" if i % 2 else "m-small",
                "locale": "en",
            }
        )
        for i in range(n)
    ]
    table = pa.Table.from_pydict(
        {
            "rid": rids.tolist(),
            "id": [f"b{i}" for i in range(n)],
            "prompt": [f"prompt {i}" for i in range(n)],
            "response": [None] * n,
            "label": np.where(draw[0] < 0.10, "sel10", "other").tolist(),
            "user_id": ["u"] * n,
            "session_id": [None] * n,
            "parent_id": [None] * n,
            "turn": [None] * n,
            "created_at": [None] * n,
            "quality": [None] * n,
            "tags": [[] for _ in range(n)],
            "origin": ["real"] * n,
            "source": np.where(draw[1] < 0.01, "sel1", "x").tolist(),
            "metadata": metadata,
            "file": ["bench"] * n,
            "line": list(range(n)),
        },
        schema=RECORD_SCHEMA,
    )
    write_records_store(root / "store.duckdb", table)
    publish_index(
        root / "index",
        rids,
        vectors,
        table.column("prompt").to_pylist(),
        IndexSettings(recall_queries=50),
        {"model": "bench", "dim": 384},
    )
    return vectors, rids, table


def measure(searcher: Searcher, vectors: np.ndarray, queries: np.ndarray, flt: str) -> dict:
    """DuckDB evaluation, search uncached / cached, recall@10 and the post-filter peer."""
    state, scope = searcher._state, Scope.all()
    conditions = as_conditions([flt])
    eval_t = []
    for _ in range(20):
        cursor = snapshot_cursor(searcher._con)
        start = time.perf_counter()
        allowed_rids = matching_rids(cursor, conditions, scope)
        eval_t.append(time.perf_counter() - start)
        cursor.close()
    allowed_rows = state.rows_of(allowed_rids)
    truth = exact_topk(vectors, state.rids, allowed_rows, queries)
    cold_t = []
    for q in queries[:30]:
        searcher._filters.clear()
        start = time.perf_counter()
        searcher.search_ids(q, K, filters=[flt], scope=scope)
        cold_t.append(time.perf_counter() - start)
    warm_t, recall, short = [], [], 0
    for q, t in zip(queries, truth, strict=True):
        start = time.perf_counter()
        found, _ = searcher.search_ids(q, K, filters=[flt], scope=scope)
        warm_t.append(time.perf_counter() - start)
        recall.append(len(set(found.tolist()) & t) / max(1, len(t)))
        short += len(found) < K
    allowed = set(allowed_rids.tolist())
    post_t, post_recall, post_short = [], [], 0
    for q, t in zip(queries, truth, strict=True):
        start = time.perf_counter()
        found, _ = searcher.search_ids(q, POST_K, scope=scope)
        kept = [r for r in found.tolist() if r in allowed][:K]
        post_t.append(time.perf_counter() - start)
        post_recall.append(len(set(kept) & t) / max(1, len(t)))
        post_short += len(kept) < K
    return {
        "filter": flt,
        "allowed": len(allowed_rids),
        "eval_p50": pct(eval_t, 50),
        "cold_p50": pct(cold_t, 50),
        "warm_p50": pct(warm_t, 50),
        "recall": float(np.mean(recall)),
        "short": short,
        "post_p50": pct(post_t, 50),
        "post_recall": float(np.mean(post_recall)),
        "post_short": post_short,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    offline()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        vectors, _, _ = build(root, args.n, seed=3)
        built = time.perf_counter() - started
        queries = clustered(args.queries, 384, seed=99)
        searcher = Searcher(root / "index", root / "store.duckdb", SearchSettings(), None)
        rows = [
            {"sel": sel, **measure(searcher, vectors, queries, flt)}
            for sel, flts in FILTERS.items()
            for flt in flts
        ]
        factory = searcher.manifest.get("factory")
        searcher.close()
    lines = [
        f"{args.n:,} synthetic 384-d records, index `{factory}` (built in {built:.0f} s), "
        f"{args.queries} queries, k={K}. *Filter eval*: DuckDB rows for the filter alone; "
        "*uncached*: the whole vector search paying the filter each query; *cached*: the "
        "filter's rows from the Searcher's cache. Peer: post-filter of the unfiltered "
        f"top {POST_K} (membership test free). *short*: queries with fewer than {K} hits. "
        f"Load average at the end: {os.getloadavg()[0]:.1f} (a shared machine inflates ms).",
        "",
        "| sel. | filter | allowed | filter eval p50 ms | pre-filter uncached p50 ms | "
        "pre-filter cached p50 ms | recall@10 | short | post-filter p50 ms | "
        "post recall@10 | post short |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['sel']} | `{r['filter']}` | {r['allowed']:,} | {r['eval_p50']:.2f} | "
            f"{r['cold_p50']:.2f} | {r['warm_p50']:.2f} | {r['recall']:.3f} | {r['short']} | "
            f"{r['post_p50']:.2f} | {r['post_recall']:.3f} | {r['post_short']} |"
        )
    print("\n".join(lines))
    if not args.no_append:
        command = f"python benchmarks/filters.py --n {args.n} --queries {args.queries}"
        append_section("Filters: metadata keys vs built-in fields", command, lines)


if __name__ == "__main__":
    main()
