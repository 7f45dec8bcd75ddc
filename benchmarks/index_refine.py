"""IVF-PQ recall@10: which of nprobe, the re-rank depth and the PQ size sets it.

    python benchmarks/index_refine.py [--n 500000] [--pq 32,48] [--depth 16,64,256]

The same synthetic data as benchmarks/index_scale.py (384-d, a mixture of 1,000 Gaussians,
normalised; held-out queries from the same mixture). One `IVF{nlist},PQ{pq_m}np` index per
PQ size is built by the platform (`build_faiss`, a `train` sample), then each query runs
the searcher's own re-rank (`refined_search`: `depth`*10 PQ candidates re-scored exactly
from the memory-mapped floats) at every nprobe and depth. Also printed: where the exact
top 10 fall in the PQ order of the probed lists (rank 0 = PQ's best), which says how deep
the re-rank must go. Latencies are with the floats in the page cache (they were just
written). Results are printed and appended to benchmarks/RESULTS.md.
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
from benchmarks.results import append_section, offline  # noqa: E402


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500_000)
    parser.add_argument("--clusters", type=int, default=1_000)
    parser.add_argument("--nlist", type=int, default=1024)
    parser.add_argument("--train", type=int, default=65_536)
    parser.add_argument("--pq", type=ints, default=[32, 48])
    parser.add_argument("--depth", type=ints, default=[16, 64, 256], help="refine_k_factor")
    parser.add_argument("--nprobe", type=ints, default=[16, 64])
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    offline()
    import faiss

    from pipeline.index.compressed import refined_search
    from pipeline.index.factory import IndexSettings, build_faiss

    load_before = os.getloadavg()
    lines = [
        "| pq_m | nprobe | depth (candidates) | recall@10 | p50 ms |",
        "|---|---|---|---|---|",
    ]
    ranks_lines = []
    build_lines = []
    with tempfile.TemporaryDirectory(prefix="index-refine-") as tmp:
        vectors = mixture(args.n, 1, Path(tmp) / "v.npy", clusters=args.clusters)
        queries = mixture(args.queries, 99, clusters=args.clusters)
        _, exact = faiss.knn(queries, vectors, 10, metric=faiss.METRIC_INNER_PRODUCT)
        rids = np.arange(args.n, dtype=np.int64)
        for pq_m in args.pq:
            settings = IndexSettings(
                nlist=args.nlist,
                pq_m=pq_m,
                refine="mmap",
                train_size=args.train,
                build_threads=args.threads,
            )
            start = time.perf_counter()
            index = build_faiss(vectors, rids, f"IVF{args.nlist},PQ{pq_m}np", settings)
            build_lines.append(f"pq_m {pq_m}: built in {time.perf_counter() - start:.0f} s")
            inner = faiss.downcast_index(index.index)
            ivf = faiss.extract_index_ivf(inner)
            for nprobe in args.nprobe:
                ivf.nprobe = nprobe
                for depth in args.depth:
                    hits, times = 0, []
                    for q, truth in zip(queries, exact, strict=True):
                        t = time.perf_counter()
                        _, rows = refined_search(inner, vectors, q, 10, depth)
                        times.append(time.perf_counter() - t)
                        hits += len(set(rows[0].tolist()) & set(truth.tolist()))
                    recall = hits / (10 * len(queries))
                    p50 = 1000 * float(np.median(times))
                    lines.append(
                        f"| {pq_m} | {nprobe} | {depth} ({10 * depth:,}) | {recall:.3f} | "
                        f"{p50:.2f} |"
                    )
                    print(lines[-1], flush=True)
            ivf.nprobe = max(args.nprobe)
            _, order = inner.search(queries, 10 * max(args.depth) * 4)
            ranks = []
            for found, truth in zip(order, exact, strict=True):
                where = {row: i for i, row in enumerate(found.tolist())}
                ranks += [where.get(row, len(found)) for row in truth.tolist()]
            p50, p90 = np.percentile(ranks, [50, 90])
            ranks_lines.append(
                f"pq_m {pq_m}: the exact top 10 sit at PQ rank {p50:.0f} (median) and "
                f"{p90:.0f} (90th percentile) of the probed lists (nprobe {ivf.nprobe})"
            )
        # The score gap PQ has to resolve: exact scores of rank 1, 10, 100, 1000.
        scores = np.sort(np.asarray(vectors @ queries[0]))[::-1]
        gap = ", ".join(f"{scores[i]:.3f}" for i in (0, 9, 99, 999))
    load_after = os.getloadavg()
    notes = [*build_lines, *ranks_lines, f"query 0's exact scores at rank 1, 10, 100, 1000: {gap}"]
    print("\n".join(["", *lines, "", *notes]))
    if not args.no_append:
        cmd = "python benchmarks/index_refine.py " + " ".join(sys.argv[1:])
        text = [
            f"n={args.n:,} 384-d vectors, a mixture of {args.clusters:,} Gaussians "
            f"(~{args.n // args.clusters:,} per cluster), nlist {args.nlist}, trained on "
            f"{args.train:,}; {args.queries} held-out queries; the searcher's re-rank "
            f"(`refined_search`) with the floats in the page cache; FAISS threads "
            f"{args.threads}; load average {load_before[0]:.1f} before, {load_after[0]:.1f} "
            "after (2 cores shared with other agents).",
            "",
            *lines,
            "",
            *[f"- {line}" for line in notes],
        ]
        append_section("IVF-PQ recall: nprobe, re-rank depth, PQ size", cmd.strip(), text)


if __name__ == "__main__":
    main()
