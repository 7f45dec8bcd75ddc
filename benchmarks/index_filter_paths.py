"""Filtered search on IVF-PQ: the exact subset against the filtered list scan, and the
exact subset's gather in 2,048-row chunks against one gather of every row.

    python benchmarks/index_filter_paths.py [--n 1000000] [--queries 20]

Builds an `ivfpq_disk` index (nlist 1,024) on n vectors of the Gaussian mixture of
`index_scale.py`, loads it with `IndexState`, and times `vector_top` for seeded filters at
several selectivities twice: forced onto the exact subset, and forced onto the FAISS
filtered scan (nprobe widened by (1/selectivity)^0.6). These are the two costs the
searcher's `EXACT_ROW_COST` weighs; the column `searcher` is what it now picks. Then the
exact subset's scores (`gathered_scores`) at chunk 2,048 against chunk 65,536 (the old
single gather). Floats in the page cache (the queries run after a warm-up pass).
Appends to RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from index_scale import build, mixture  # noqa: E402

from benchmarks.results import append_section, offline  # noqa: E402

SELECTIVITY = (0.1, 0.03, 0.01, 0.003, 0.001)


def p50(fn, repeats: int) -> float:
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    offline()
    from pipeline.index.compressed import gathered_scores
    from pipeline.search.state import IndexState

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="filter-paths-") as tmp:
        work = Path(tmp)
        vectors = mixture(args.n, seed=1, path=work / "vectors.npy")
        queries = mixture(args.queries, seed=99)
        over = {"nlist": 1024, "train_size": 65_536, "add_batch": 250_000, "build_threads": 2}
        build(work / "index", vectors, "ivfpq_disk", over)
        state = IndexState.load(work / "index")
        rng = np.random.default_rng(7)
        rows_table, gather_table = [], []
        for s in SELECTIVITY:
            rows = np.sort(rng.choice(args.n, int(args.n * s), replace=False))
            q = queries

            def exact(i: int, rows: np.ndarray = rows, q: np.ndarray = q) -> None:
                state.vector_top(q[i], 10, rows, 10**12, 1024)  # exact_below above len(rows)

            def scan(i: int, rows: np.ndarray = rows, q: np.ndarray = q) -> None:
                params = state._filtered_params(rows, len(rows) / args.n, 1024)
                state._search(q[i : i + 1], 10, params)

            exact(0), scan(0)  # warm the pages both paths touch
            picked = state.vector_top(q[0], 10, rows, 0, 1024)[2]
            rows_table.append(
                f"| {s:.1%} | {len(rows):,} | {p50(exact, args.queries):.2f} | "
                f"{p50(scan, args.queries):.2f} | {picked} |"
            )
            for chunk in (2_048, 65_536):
                gathered_scores(state.vectors, rows, q[0], chunk)
            small = p50(lambda i, r=rows, q=q: gathered_scores(state.vectors, r, q[i], 2_048), 10)
            whole = p50(lambda i, r=rows, q=q: gathered_scores(state.vectors, r, q[i], 65_536), 10)
            gather_table.append(
                f"| {len(rows):,} | {small:.2f} | {whole:.2f} | {whole / small:.2f}x |"
            )
    lines = [
        f"n={args.n:,} 384-d vectors (1,000-Gaussian mixture), `ivfpq_disk` nlist 1,024, "
        f"nprobe 16; {args.queries} queries; load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after (2 cores shared with other agents).",
        "",
        "| filter | allowed rows | exact subset p50 ms | filtered list scan p50 ms "
        "| searcher picks |",
        "|---|---|---|---|---|",
        *rows_table,
        "",
        "Exact-subset scores (`gathered_scores`), p50 ms of 10 queries:",
        "",
        "| rows | chunks of 2,048 | one gather (65,536) | ratio |",
        "|---|---|---|---|",
        *gather_table,
    ]
    print("\n".join(lines))
    if not args.no_append:
        command = "python benchmarks/index_filter_paths.py " + " ".join(sys.argv[1:])
        append_section("Filtered IVF-PQ search: exact subset vs list scan", command, lines)


if __name__ == "__main__":
    main()
