"""Search benchmark: latency and recall@10, unfiltered and pre-filtered, platform vs raw FAISS.

    python benchmarks/search.py [--n 1000000] [--t0-root /tmp/t0proj] [--queries 200]

1. Synthetic: n clustered 384-d vectors (Gaussian clusters on a 16-d local subspace plus
   noise, normalised; queries drawn from the same clusters, not indexed). Filters on
   random columns matching 10%, 1% and 0.1%. Each query runs through raw FAISS (the
   index's own search, an IDSelectorBatch built outside the timer) and through the
   platform's Searcher (DuckDB filter -> pre-filter -> results with metadata).
2. t0-prompts: the index built by `pipeline index build` under --t0-root (real MiniLM
   embeddings; see docs/search.md for the subsample), same measurements, plus hybrid quality on
   derived queries, fusion tuned on dev records and reported on test records
   (benchmarks/search_quality.py), and the cold-start wall time of `python -m pipeline search`.
Results are printed and appended to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # helpers.store: a store from a table, as the tests build

from helpers.store import write_records_store  # noqa: E402
from search_quality import hybrid_quality  # noqa: E402

from pipeline.index.build import publish_index  # noqa: E402
from pipeline.index.factory import IndexSettings  # noqa: E402
from pipeline.record import RECORD_SCHEMA  # noqa: E402
from pipeline.search.api import Searcher, SearchSettings  # noqa: E402
from pipeline.store.scope import Scope  # noqa: E402

SELECTIVITIES = {"none": None, "10%": "label=sel10", "1%": "source=sel1", "0.1%": "user_id=sel01"}
K = 10


def clustered(n: int, dim: int, seed: int, clusters: int = 2000, local_dim: int = 16) -> np.ndarray:
    """Normalised points near `clusters` centres, spread on a low-dimensional local subspace."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    basis = rng.standard_normal((local_dim, dim), dtype=np.float32) * 0.1
    out = np.empty((n, dim), dtype=np.float32)
    for lo in range(0, n, 100_000):
        m = min(100_000, n - lo)
        chunk = centres[rng.integers(0, clusters, m)]
        chunk += rng.standard_normal((m, local_dim), dtype=np.float32) @ basis
        chunk += 0.01 * rng.standard_normal((m, dim), dtype=np.float32)
        chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
        out[lo : lo + m] = chunk
    return out


def selectivity_columns(n: int, seed: int) -> dict[str, list[str]]:
    """Independent random columns so each filter matches its fraction of records."""
    u = np.random.default_rng(seed).random(n)
    return {
        "label": np.where(u < 0.10, "sel10", "other").tolist(),
        "source": np.where(np.random.default_rng(seed + 1).random(n) < 0.01, "sel1", "x").tolist(),
        "user_id": np.where(
            np.random.default_rng(seed + 2).random(n) < 0.001, "sel01", "u"
        ).tolist(),
    }


def store_table(rids: np.ndarray, prompts: list[str], seed: int) -> pa.Table:
    n = len(rids)
    cols = selectivity_columns(n, seed)
    return pa.Table.from_pydict(
        {
            "rid": rids.tolist(),
            "id": [f"b{i}" for i in range(n)],
            "prompt": prompts,
            "response": [None] * n,
            "label": cols["label"],
            "user_id": cols["user_id"],
            "session_id": [None] * n,
            "parent_id": [None] * n,
            "turn": [None] * n,
            "created_at": [None] * n,
            "quality": [None] * n,
            "tags": [[] for _ in range(n)],
            "origin": ["real"] * n,
            "source": cols["source"],
            "metadata": [None] * n,
            "file": ["bench"] * n,
            "line": list(range(n)),
        },
        schema=RECORD_SCHEMA,
    )


def exact_topk(
    vectors: np.ndarray, rids: np.ndarray, allowed: np.ndarray | None, queries: np.ndarray
) -> list[set[int]]:
    """Brute-force top-k rids per query over all rows or only the allowed ones."""
    import faiss

    rows = np.arange(len(rids)) if allowed is None else allowed
    subset = vectors if allowed is None else np.ascontiguousarray(vectors[rows])
    _, found = faiss.knn(queries, subset, min(K, len(rows)), metric=faiss.METRIC_INNER_PRODUCT)
    return [set(rids[rows[f[f >= 0]]].tolist()) for f in found]


def pct(values: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000, p))


def measure(
    searcher: Searcher, vectors: np.ndarray, queries: np.ndarray, table: pa.Table, raw_params
) -> list[dict]:
    """Per selectivity: raw FAISS and platform p50/p99 and recall@10 vs exact."""
    import faiss

    state = searcher._state
    rids = state.rids
    rows_rids = np.asarray(table.column("rid").to_pylist(), dtype=np.int64)
    out = []
    for name, flt in SELECTIVITIES.items():
        if flt is None:
            allowed_rows = None
        else:
            field, value = flt.split("=")
            mask = np.asarray(table.column(field).to_pylist()) == value
            allowed_rows = np.searchsorted(rids, np.sort(rows_rids[mask]))
        truth = exact_topk(vectors, rids, allowed_rows, queries)
        want = min(K, len(rids) if allowed_rows is None else len(allowed_rows))
        # Raw FAISS: the index's own search; a filter as an IDSelectorBatch of rids.
        params = raw_params()
        if allowed_rows is not None:
            selector = faiss.IDSelectorBatch(rids[allowed_rows])
            params.sel = selector
        raw_t, raw_recall, raw_short = [], [], 0
        for q, t in zip(queries, truth, strict=True):
            start = time.perf_counter()
            _, ids = state.index.search(q[None], K, params=params)
            raw_t.append(time.perf_counter() - start)
            found = {int(i) for i in ids[0] if i >= 0}
            raw_short += len(found) < want
            raw_recall.append(len(found & t) / max(1, len(t)))
        filters = [flt] if flt else []
        searcher._filters.clear()
        if filters:
            searcher.search_ids(
                queries[0], K, filters=filters, scope=Scope.all()
            )  # fill the filter cache
        ids_t, recall, short = [], [], 0
        for q, t in zip(queries, truth, strict=True):
            start = time.perf_counter()
            found_rids, _ = searcher.search_ids(q, K, filters=filters, scope=Scope.all())
            ids_t.append(time.perf_counter() - start)
            found = set(found_rids.tolist())
            short += len(found) < want
            recall.append(len(found & t) / max(1, len(t)))
        cold_t = []
        for q in queries[: len(queries) // 2] if filters else []:
            searcher._filters.clear()  # every query pays the DuckDB filter
            start = time.perf_counter()
            searcher.search_ids(q, K, filters=filters, scope=Scope.all())
            cold_t.append(time.perf_counter() - start)
        full_t = []
        for q in queries[: len(queries) // 2]:
            start = time.perf_counter()
            searcher.search_vector(q, K, filters=filters, scope=Scope.all())
            full_t.append(time.perf_counter() - start)
        out.append(
            {
                "filter": name,
                "allowed": len(rids) if allowed_rows is None else len(allowed_rows),
                "raw_p50": pct(raw_t, 50),
                "raw_p99": pct(raw_t, 99),
                "raw_recall": float(np.mean(raw_recall)),
                "raw_short": raw_short,
                "p50": pct(ids_t, 50),
                "p99": pct(ids_t, 99),
                "recall": float(np.mean(recall)),
                "short": short,
                "cold_filter_p50": pct(cold_t, 50) if cold_t else float("nan"),
                "full_p50": pct(full_t, 50),
            }
        )
    return out


def table_text(title: str, rows: list[dict]) -> str:
    lines = [
        f"**{title}**",
        "",
        "| filter | allowed | raw FAISS p50 / p99 ms | raw recall@10 | raw short | "
        "platform p50 / p99 ms | platform recall@10 | platform short | p50 ratio | "
        "platform p50, filter uncached | platform p50, with records from DuckDB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['filter']} | {r['allowed']:,} | {r['raw_p50']:.3f} / {r['raw_p99']:.3f} | "
            f"{r['raw_recall']:.3f} | {r['raw_short']} | {r['p50']:.3f} / {r['p99']:.3f} | "
            f"{r['recall']:.3f} | {r['short']} | {r['p50'] / max(r['raw_p50'], 1e-9):.2f}x | "
            f"{r['cold_filter_p50']:.3f} | {r['full_p50']:.3f} |"
        )
    lines += [
        "",
        "raw = the FAISS index's own search (`index.search` with an `IDSelectorBatch` of the "
        "allowed rids built outside the timer, same nprobe/efSearch, no widening); platform = "
        "`Searcher.search_ids` (filter rows from DuckDB, cached; exact scoring of the allowed "
        "vectors below `exact_below` records, else the FAISS pre-filter with a widened search); "
        "short = queries that got fewer than k results although k records matched.",
    ]
    return "\n".join(lines)


def synthetic(n: int, n_queries: int, work: Path) -> tuple[str, dict]:
    import faiss

    start = time.perf_counter()
    both = clustered(n + n_queries, 384, seed=7)
    vectors, queries = both[:n], both[n:]
    del both
    rids = np.arange(n, dtype=np.int64) * 2 + 1_000_000_007  # not positions, like real rids
    table = store_table(rids, ["doc"] * n, seed=11)
    write_records_store(work / "store.duckdb", table)
    settings = IndexSettings(
        factory="auto", nlist=1024, nprobe=16, build_threads=2, recall_queries=100
    )
    t0 = time.perf_counter()
    manifest = publish_index(
        work / "index", rids, vectors, ["doc"] * n, settings, {"model": "synthetic", "dim": 384}
    )
    build = time.perf_counter() - t0
    searcher = Searcher(work / "index", work / "store.duckdb", SearchSettings(), None)
    nprobe = (
        faiss.extract_index_ivf(searcher._state.inner).nprobe
        if searcher._state.kind == "ivf"
        else None
    )

    def raw_params():
        if searcher._state.kind == "ivf":
            return faiss.SearchParametersIVF(nprobe=nprobe)
        if searcher._state.kind == "hnsw":
            return faiss.SearchParametersHNSW(efSearch=64)
        return faiss.SearchParameters()

    rows = measure(searcher, vectors, queries, table, raw_params)
    info = {
        "n": n,
        "factory": manifest["factory"],
        "build_s": build,
        "setup_s": time.perf_counter() - start,
    }
    searcher.close()
    title = (
        f"Synthetic clustered vectors: {n:,} x 384, {manifest['factory']}, "
        f"{len(queries)} queries, k=10"
    )
    note = f"\n\nIndex build {build:.0f} s ({manifest['factory']}, 2 threads)."
    return table_text(title, rows) + note, info


def t0_vectors(t0_root: Path, n_queries: int, work: Path) -> str:
    """Latency/recall on the real t0 embeddings, Flat (auto) and HNSW32, same filters."""
    import faiss

    index_dir = t0_root / "data" / "index"
    vectors = np.load(index_dir / "vectors.npy")
    rids = np.load(index_dir / "rids.npy")
    rng = np.random.default_rng(3)
    picks = rng.choice(len(rids), size=min(n_queries, len(rids)), replace=False)
    # Queries: indexed vectors perturbed and renormalised (the real encoder is timed in cold start).
    queries = vectors[picks] + 0.05 * rng.standard_normal(
        (len(picks), vectors.shape[1]), dtype=np.float32
    )
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    table = store_table(rids, ["t0"] * len(rids), seed=5)
    out = []
    for factory in ("Flat", "HNSW32,Flat"):
        sub = work / factory.replace(",", "_")
        sub.mkdir()
        write_records_store(sub / "store.duckdb", table)
        publish_index(
            sub / "index",
            rids,
            vectors,
            ["t0"] * len(rids),
            IndexSettings(factory=factory),
            {"model": "t0", "dim": 384},
        )
        searcher = Searcher(sub / "index", sub / "store.duckdb", SearchSettings(), None)
        kind = searcher._state.kind

        def raw_params(kind: str = kind):
            return (
                faiss.SearchParametersHNSW(efSearch=64)
                if kind == "hnsw"
                else faiss.SearchParameters()
            )

        rows = measure(searcher, vectors, queries, table, raw_params)
        searcher.close()
        out.append(
            table_text(
                f"t0-prompts embeddings ({len(rids):,} records), {factory}, "
                f"{len(queries)} queries, k=10",
                rows,
            )
        )
    return "\n\n".join(out)


def t0_params(t0_root: Path) -> dict:
    """The t0 project's params.yaml with this repository's `search` section (the code's
    defaults, not those of the checkout that built the t0 index)."""
    import yaml

    params = yaml.safe_load((t0_root / "params.yaml").read_text(encoding="utf-8"))
    search = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))["search"]
    if "encode_cache" in search:
        search["encode_cache"] = 0  # each query pays its own encoding in the latencies
    return {**params, "search": search}


def cold_start(t0_root: Path, runs: int = 5) -> str:
    """Wall and CPU time of a fresh `python -m pipeline search` process, per mode."""
    import resource

    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    query = "how do refunds for damaged parcels work"
    lines = [
        "**Cold start**: `python -m pipeline search TEXT --mode M --root <t0 project>`, a fresh "
        "process each time (CPU = user + sys of the child: what it costs on an idle machine)",
        "",
        "| mode | wall median s | wall min / max s | CPU median s | imports torch |",
        "|---|---:|---:|---:|---|",
    ]
    for mode in ("hybrid", "vector", "keyword"):
        walls, cpus = [], []
        argv = [sys.executable, "-m", "pipeline", "search", query, "--mode", mode]
        for _ in range(runs):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run(
                [*argv, "--root", str(t0_root)], check=True, capture_output=True, env=env
            )
            walls.append(time.perf_counter() - start)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        probe = (
            "import sys; from pipeline.cli import main; "
            f"main(['search', 'refund', '--mode', {mode!r}, '--root', {str(t0_root)!r}]); "
            "print('torch' in sys.modules, file=sys.stderr)"
        )
        torch = subprocess.run(
            [sys.executable, "-c", probe], check=True, capture_output=True, text=True, env=env
        ).stderr.strip()
        lines.append(
            f"| {mode} | {statistics.median(walls):.2f} | {min(walls):.2f} / {max(walls):.2f} | "
            f"{statistics.median(cpus):.2f} | {torch} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="synthetic vectors (0 = skip)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--t0-root", type=Path, default=None, help="project with a built t0 index")
    parser.add_argument("--no-append", action="store_true", help="print only")
    parser.add_argument(
        "--lancedb-root", type=Path, default=None,
        help="project with a built index: ours beside LanceDB's hybrid search "
        "(benchmarks/search_lancedb.py; the `bench` extra)",
    )  # fmt: skip
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # single-query latency: no thread hand-off
    sections, started = [], time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="bench-search-"))
    try:
        if args.n:
            (work / "syn").mkdir()
            text, _ = synthetic(args.n, args.queries, work / "syn")
            print(text, flush=True)
            sections.append(text)
            shutil.rmtree(work / "syn")
        if args.t0_root:
            (work / "t0").mkdir()
            for part in (
                t0_vectors(args.t0_root, args.queries, work / "t0"),
                hybrid_quality(args.t0_root, args.queries, t0_params(args.t0_root)),
                cold_start(args.t0_root),
            ):
                print(part, flush=True)
                sections.append(part)
        if args.lancedb_root:
            from search_lancedb import compare

            os.environ.setdefault("LANCEDB_LOG", "error")
            part = (
                "**Ours vs LanceDB hybrid search**\n\n"
                + compare(args.lancedb_root.resolve(), args.queries)[0]
            )
            print(part, flush=True)
            sections.append(part)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load = os.getloadavg()
    header = (
        f"## Search ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)\n\n"
        f"Machine: {os.cpu_count()} cores ({platform.processor() or platform.machine()}), "
        f"load average {load[0]:.1f} at the end (shared with other jobs: latencies are "
        f"pessimistic). Command: `python benchmarks/search.py {' '.join(sys.argv[1:])}` "
        f"({time.perf_counter() - started:.0f} s).\n"
    )
    body = header + "\n" + "\n\n".join(sections) + "\n"
    if not args.no_append:
        with (REPO / "benchmarks" / "RESULTS.md").open("a", encoding="utf-8") as fh:
            fh.write("\n" + body)
    print(json.dumps({"appended": not args.no_append}))


if __name__ == "__main__":
    main()
