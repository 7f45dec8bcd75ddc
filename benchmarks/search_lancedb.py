"""Our search beside LanceDB's hybrid search: the same queries, the same embeddings.

    python benchmarks/search_lancedb.py [--root PROJECT] [--queries 200] [--reps 5] [--no-append]

PROJECT is one where `pipeline index build` ran (default: this checkout, the bundled
sample; a t0-prompts project works the same and is the bigger test). Queries: the retrieval
stage's bootstrap set (pipeline/retrieval/bootstrap.py: 16-word windows of kept prompts,
every 4th word dropped, typos in 30% of the words; the answer is the source record) and the
judged queries of PROJECT's data/judgments.parquet when it has any.

LanceDB (from PyPI, the `bench` extra) gets the very vectors of data/index/vectors.npy and
the very texts our keyword index holds, in a table in a temporary directory: its own
full-text index (native, English stemming and stop words: its defaults), brute-force vector
search (as our Flat index; no ANN index at this size) and its hybrid query (both lists fused
by its default RRF reranker). Both sides get the query vector encoded once beforehand
(ours from its query-vector cache, LanceDB as the argument), so the latencies compare
search, not the encoder.

Latency on a shared, noisy machine: after one pass that scores quality (and warms both),
`--reps` timed passes run every query through all six searches (ours and LanceDB's
vector, keyword, hybrid) in a fresh random order each time, query order shuffled too, so a
burst of load lands on both sides alike. p50 is over every (query, pass) sample; the ratio
is the median over queries of ours/LanceDB (each query's median over the passes, paired),
with a 95% bootstrap interval: "tie" when the interval holds 1. Our searches run on one
thread (OMP_NUM_THREADS=1); LanceDB's Rust runtime keeps its own thread pool.
About 3 minutes on the sample with 200 queries and 5 passes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from results import append_section, offline  # noqa: E402

K = 10


def queries_of(root: Path, cfg: dict, n: int) -> dict[str, list]:
    """{"bootstrap": [...], "judged": [...]} evaluation queries of the project."""
    import pandas as pd
    import pyarrow.parquet as pq

    from pipeline.retrieval.bootstrap import bootstrap_queries, judged_queries

    records = pd.read_parquet(root / cfg["paths"]["records"], columns=["id", "prompt"])
    records = records.sort_values("id", kind="stable")
    out = {"bootstrap": bootstrap_queries(list(records["id"]), list(records["prompt"]), n, 42)}
    judged = root / cfg["paths"].get("judgments", "data/judgments.parquet")
    rows = pq.read_table(judged).to_pylist() if judged.exists() else []
    out["judged"] = [q for q in judged_queries(rows) if any(g >= 1 for g in q.grades.values())]
    return out


def lance_table(root: Path, cfg: dict, work: Path):
    """A LanceDB table of (id, text, vector) from the project's index, with its FTS index."""
    import lancedb
    import pyarrow as pa
    from lancedb.index import FTS

    from pipeline.embed import EmbedSettings
    from pipeline.stages.index import kept_texts
    from pipeline.store.db import open_snapshot

    index_dir = root / cfg["paths"]["index_dir"]
    vectors = np.load(index_dir / "vectors.npy")
    rids = np.load(index_dir / "rids.npy")
    kept_rids, _, keyword_texts = kept_texts(root / cfg["paths"]["records"],
                                             EmbedSettings.from_cfg(cfg["embed"]))  # fmt: skip
    text_of = dict(zip(kept_rids.tolist(), keyword_texts, strict=True))
    con = open_snapshot(root / cfg["paths"]["store"])
    ids = dict(con.execute("SELECT rid, id FROM records").fetchall())
    con.close()
    table = pa.table(
        {
            "id": [ids[int(r)] for r in rids],
            "text": [text_of[int(r)] for r in rids],
            "vector": pa.FixedSizeListArray.from_arrays(
                pa.array(vectors.ravel(), pa.float32()), vectors.shape[1]
            ),
        }
    )
    db = lancedb.connect(str(work / "lance"))
    tbl = db.create_table("records", table)
    tbl.create_index("text", config=FTS())  # native FTS, its defaults
    return tbl


def quality(run, queries: list, vectors: dict[str, np.ndarray]) -> dict[str, float]:
    """recall@10 and nDCG@10 of `run(query, vector) -> ranked ids` (also its warm-up)."""
    from pipeline.retrieval.metrics import ndcg_at_k, recall_at_k, relevant

    recall, ndcg = [], []
    for q in queries:
        ranked = run(q, vectors[q.query_id])
        recall.append(recall_at_k(ranked, relevant(q.grades), K))
        ndcg.append(ndcg_at_k(ranked, q.grades, K))
    return {"recall@10": float(np.mean(recall)), "ndcg@10": float(np.mean(ndcg))}


def interleaved(runs: dict, queries: list, vectors: dict, reps: int, seed: int = 0) -> dict:
    """Per run name, ms per (query, pass): every query through every run, in random order."""
    rng = np.random.default_rng(seed)
    names = list(runs)
    took = {name: np.zeros((len(queries), reps)) for name in names}
    for rep in range(reps):
        for qi in rng.permutation(len(queries)):
            q = queries[qi]
            for name in rng.permutation(names):
                started = time.perf_counter()
                runs[name](q, vectors[q.query_id])
                took[name][qi, rep] = (time.perf_counter() - started) * 1000
    return took


def paired_ratio(ours: np.ndarray, peer: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """Median over queries of ours/peer (per-query medians over passes) and its 95% CI."""
    ratio = np.median(ours, axis=1) / np.median(peer, axis=1)
    rng = np.random.default_rng(seed)
    boots = np.median(rng.choice(ratio, (2000, len(ratio))), axis=1)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return float(np.median(ratio)), float(lo), float(hi)


def compare(root: Path, n_queries: int, reps: int = 5) -> tuple[str, dict]:
    """The comparison table (markdown) and its figures."""
    from pipeline.config import read_params
    from pipeline.search.project import open_from_config
    from pipeline.store.scope import Scope

    cfg = read_params(root / "params.yaml")
    searcher = open_from_config(root, cfg)
    sets = queries_of(root, cfg, n_queries)
    every = [q for qs in sets.values() for q in qs]
    vectors = {q.query_id: searcher._encode(q.text) for q in every}  # fills the encode cache
    ours = {
        mode: (lambda q, v, mode=mode: [h.id for h in searcher.search(
            q.text, k=K, mode=mode, filters=q.filters, scope=Scope.all())])
        for mode in ("vector", "keyword", "hybrid")
    }  # fmt: skip
    figures: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-lance-") as tmp:
        tbl = lance_table(root, cfg, Path(tmp))

        def lance(kind: str):
            def run(q, v):
                if kind == "vector":
                    found = tbl.search(v, query_type="vector").limit(K)
                elif kind == "keyword":
                    found = tbl.search(q.text, query_type="fts").limit(K)
                else:
                    found = tbl.search(query_type="hybrid").vector(v).text(q.text).limit(K)
                return [row["id"] for row in found.select(["id"]).to_list()]

            return run

        runs = {("ours", m): run for m, run in ours.items()}
        runs |= {("lancedb", m): lance(m) for m in ("vector", "keyword", "hybrid")}
        for name, queries in sets.items():
            if not queries:
                continue
            for (side, mode), run in runs.items():
                figures[(name, side, mode)] = quality(run, queries, vectors)
            took = interleaved(dict(enumerate(runs.values())), queries, vectors, reps)
            for n, (side, mode) in enumerate(runs):
                figures[(name, side, mode)]["p50_ms"] = float(np.percentile(took[n], 50))
                figures[(name, side, mode)]["took"] = took[n]
    searcher.close()
    records = len(np.load(root / cfg["paths"]["index_dir"] / "rids.npy"))
    fusion = cfg["search"]
    lines = [
        f"{records:,} records ({root.name or root}), encoder {cfg['embed']['model']}; ours: "
        f"fusion {fusion['fusion']} alpha {fusion['alpha']} {fusion['normalization']}, "
        f"{fusion['candidates']} candidates; LanceDB {_version()}: native FTS + flat vector "
        f"search + RRF. Latency: {reps} interleaved passes per query (see the script's "
        "header); ratio = median over queries of ours/LanceDB, [95% bootstrap CI].",
        "",
        "| queries | mode | ours recall@10 | LanceDB recall@10 | ours nDCG@10 | "
        "LanceDB nDCG@10 | ours p50 ms | LanceDB p50 ms | p50 ratio ours/LanceDB | faster |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, queries in sets.items():
        for mode in ("vector", "keyword", "hybrid"):
            if (name, "ours", mode) not in figures:
                continue
            a, b = figures[(name, "ours", mode)], figures[(name, "lancedb", mode)]
            ratio, lo, hi = paired_ratio(a.pop("took"), b.pop("took"))
            faster = "ours" if hi < 1 else "LanceDB" if lo > 1 else "tie"
            lines.append(
                f"| {name} ({len(queries)}) | {mode} | {a['recall@10']:.3f} | "
                f"{b['recall@10']:.3f} | {a['ndcg@10']:.3f} | {b['ndcg@10']:.3f} | "
                f"{a['p50_ms']:.2f} | {b['p50_ms']:.2f} | {ratio:.2f} [{lo:.2f}, {hi:.2f}] | "
                f"{faster} |"
            )
    return "\n".join(lines), figures


def _version() -> str:
    import lancedb

    return lancedb.__version__


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=REPO, help="project with a built index")
    parser.add_argument("--queries", type=int, default=200, help="bootstrap queries")
    parser.add_argument("--reps", type=int, default=5, help="interleaved timed passes")
    parser.add_argument("--no-append", action="store_true", help="print only")
    args = parser.parse_args()
    offline()
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # Not a deprecation warning per query (the variable its Rust logger reads is LANCEDB_LOG).
    os.environ.setdefault("LANCEDB_LOG", "error")
    started = time.perf_counter()
    text, _ = compare(args.root.resolve(), args.queries, args.reps)
    print(text)
    if not args.no_append:
        command = f"python benchmarks/search_lancedb.py {' '.join(sys.argv[1:])}".strip()
        load = os.getloadavg()[0]
        note = (f"\n\n{time.perf_counter() - started:.0f} s; load average {load:.1f} "
                "(a shared machine: latencies are pessimistic for both).")  # fmt: skip
        append_section("Search vs LanceDB hybrid search", command, [text + note])


if __name__ == "__main__":
    main()
