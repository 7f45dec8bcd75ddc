"""Encryption at rest: what PIPELINE_DB_KEY costs the sample's dedup stage and a search.

    python benchmarks/encryption.py [--repeats 3] [--queries 200] [--no-append]

The bundled sample (data/raw), the real dedup stage in-process, plain and encrypted runs
interleaved (the machine is shared: compare the ratio, not the seconds), after one warm-up
of each that fills the shared embedding cache. Search: the stage's own store under the
Searcher (a Flat index of seeded vectors over records.parquet, so the encoder is not
timed), a filtered vector search with the filter cache cleared before every query (DuckDB
evaluates the filter and fetches the hits each time), and the cold open of the store.
Encrypted writes here use DuckDB's mbedTLS writer (PIPELINE_DB_INSECURE_WRITES=1: httpfs is
not installed here); OpenSSL's writer, the one to use, is not measured.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from results import append_section, offline  # noqa: E402

KEY = "benchmark-key-not-secret"


def keyed(on: bool) -> None:
    """Set or clear the key (and the opt-in writer) for this process."""
    if on:
        os.environ["PIPELINE_DB_KEY"] = KEY
        os.environ["PIPELINE_DB_INSECURE_WRITES"] = "1"
    else:
        os.environ.pop("PIPELINE_DB_KEY", None)


def dedup_config(root: Path, cache: Path) -> object:
    """The project's config on the sample, MLflow and the embedding cache outside `root`."""
    from pipeline.config import compose

    cfg = compose([f"tracking.uri=sqlite:///{root / 'mlflow.db'}"])
    cfg.data.path = str(REPO / "data" / "raw")
    cfg.paths.embed_cache = str(cache)
    return cfg


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def search_times(root: Path, queries: int) -> tuple[float, list[float]]:
    """(cold open of the Searcher, per-query seconds of a filtered vector search)."""
    from pipeline.index.build import publish_index
    from pipeline.index.factory import IndexSettings
    from pipeline.search.api import Searcher, SearchSettings
    from pipeline.store.scope import Scope

    table = pq.read_table(root / "data/dedup/records.parquet", columns=["rid", "prompt", "label"])
    rids = table["rid"].to_numpy().astype(np.int64)
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((len(rids), 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    publish_index(root / "index", rids, vectors, table["prompt"].to_pylist(),
                  IndexSettings(factory="Flat"), {"model": "bench", "dim": 64})  # fmt: skip
    label = table["label"].drop_null()[0].as_py()
    start = time.perf_counter()
    searcher = Searcher(root / "index", root / "data/dedup/store.duckdb", SearchSettings(), None)
    opened = time.perf_counter() - start
    out = []
    for q in vectors[rng.integers(0, len(vectors), queries)]:
        searcher._filters.clear()  # DuckDB evaluates the filter every time
        out.append(timed(lambda q=q: searcher.search_vector(q, 10, [f"label={label}"],
                                                            scope=Scope.all())))  # fmt: skip
    return opened, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    offline()
    from pipeline.stages.dedup import run

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cache = tmp / "embeddings"
        roots = {False: tmp / "plain", True: tmp / "encrypted"}
        stage: dict[bool, list[float]] = {False: [], True: []}
        for i in range(args.repeats + 1):  # the first round is the warm-up
            for on in (False, True):
                keyed(on)
                seconds = timed(lambda on=on: run(dedup_config(roots[on], cache), roots[on]))
                if i:
                    stage[on].append(seconds)
        search = {}
        for on in (False, True):
            keyed(on)
            search[on] = search_times(roots[on], args.queries)
        keyed(False)

    def med(xs: list[float]) -> float:
        return statistics.median(xs)

    p50 = {on: med(search[on][1]) * 1000 for on in search}
    p95 = {on: float(np.percentile(search[on][1], 95)) * 1000 for on in search}
    lines = [
        "| what | plain | encrypted | ratio |",
        "|---|---|---|---|",
        f"| dedup stage on the sample, median of {args.repeats} (s) | {med(stage[False]):.2f} "
        f"| {med(stage[True]):.2f} | {med(stage[True]) / med(stage[False]):.2f} |",
        f"| open the store for search (ms) | {search[False][0] * 1000:.1f} "
        f"| {search[True][0] * 1000:.1f} | {search[True][0] / search[False][0]:.2f} |",
        f"| filtered vector search p50 (ms, {args.queries} queries, filter uncached) "
        f"| {p50[False]:.2f} | {p50[True]:.2f} | {p50[True] / p50[False]:.2f} |",
        f"| filtered vector search p95 (ms) | {p95[False]:.2f} | {p95[True]:.2f} "
        f"| {p95[True] / p95[False]:.2f} |",
        "",
        "Encrypted = PIPELINE_DB_KEY set (DuckDB AES-GCM; mbedTLS writer, httpfs absent). "
        "Interleaved runs on a shared 2-core machine: read the ratios.",
    ]
    print("\n".join(lines))
    if not args.no_append:
        append_section(
            "Encryption at rest: the sample's dedup stage and a search, plain vs encrypted",
            f"python benchmarks/encryption.py --repeats {args.repeats} --queries {args.queries}",
            lines,
        )


if __name__ == "__main__":
    main()
