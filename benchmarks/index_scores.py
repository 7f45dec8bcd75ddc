"""One query's exact scores over a few thousand memory-mapped rows: BLAS matvec vs einsum.

    python benchmarks/index_scores.py [--n 200000] [--rounds 5]

The searcher scores a filter's allowed rows (below `search.exact_below`) and the re-rank's
PQ candidates with one matrix-vector product per query. NumPy's `@` hands it to OpenBLAS,
which splits products of a few thousand rows across its threads; when the cores are busy
those threads wait for one. `inner_products` (pipeline/index/compressed.py) computes the
same scores with einsum in the calling thread. Both gather the same rows from a
memory-mapped .npy already in the page cache; the two are interleaved, round after round,
so the machine's load falls on both alike. Results are printed and appended to
benchmarks/RESULTS.md.
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

from benchmarks.index_scale import mixture  # noqa: E402
from benchmarks.results import append_section  # noqa: E402

ROWS = (160, 640, 2_000, 2_560, 5_000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=20, help="queries per round and path")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    from threadpoolctl import threadpool_info

    from pipeline.index.compressed import inner_products

    blas = ", ".join(f"{i['internal_api']} {i['num_threads']} threads" for i in threadpool_info())
    load_before = os.getloadavg()
    times: dict[tuple[int, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="index-scores-") as tmp:
        vectors = mixture(args.n, 1, Path(tmp) / "v.npy")
        queries = mixture(args.repeat, 99)
        rng = np.random.default_rng(7)
        picks = {r: np.sort(rng.choice(args.n, r, replace=False)) for r in ROWS}
        for rows in picks.values():
            np.asarray(vectors[rows]).sum()  # in the page cache and mapped before timing
        paths = {
            "BLAS matvec (`@`)": lambda m, q: m @ q,
            "einsum (`inner_products`)": inner_products,
        }
        for _ in range(args.rounds):
            for r, rows in picks.items():
                for label, score in paths.items():
                    for q in queries:
                        t = time.perf_counter()
                        score(vectors[rows], q)
                        times.setdefault((r, label), []).append(time.perf_counter() - t)
    load_after = os.getloadavg()
    lines = ["| rows | " + " | ".join(f"{p}: p50 ms, p90 ms" for p in paths) + " |"]
    lines.append("|---|" + "---|" * len(paths))
    for r in ROWS:
        cells = []
        for label in paths:
            p50, p90 = 1000 * np.percentile(times[(r, label)], [50, 90])
            cells.append(f"{p50:.3f}, {p90:.3f}")
        lines.append(f"| {r:,} | " + " | ".join(cells) + " |")
    print("\n".join(lines))
    if not args.no_append:
        cmd = "python benchmarks/index_scores.py " + " ".join(sys.argv[1:])
        note = [
            f"Gather the rows from a memory-mapped {args.n:,} x 384 float32 .npy (in the page "
            f"cache) and score one query; {args.rounds} interleaved rounds of {args.repeat} "
            f"queries per path; {blas}; load average {load_before[0]:.1f} before, "
            f"{load_after[0]:.1f} after (2 cores shared with other agents).",
            "",
            *lines,
        ]
        append_section("Exact scores of one query: BLAS threads vs einsum", cmd.strip(), note)


if __name__ == "__main__":
    main()
