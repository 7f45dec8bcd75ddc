"""RAG context build latency on the bundled sample, beside plain hybrid search in the same run.

Questions are the prompts of a seeded sample of kept records (their first 12 words, so the
query is not the whole passage). For each question: `Searcher.search` (k = rag.candidates,
the baseline) and `build_context` (search + whole records + neighbours + merge + exact
packing). Also the share of questions whose source record is in the packed context
(context recall on these self-derived queries: a sanity figure, not a relevance judgment).
Runs in well under a minute on 2 cores; needs `dvc repro` (or `pipeline index build`) first.

    python benchmarks/rag.py [--root .] [--queries 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import append_section, offline


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=".")
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    offline()

    import dataclasses

    import numpy as np
    import pyarrow.parquet as pq

    from pipeline.config import read_params
    from pipeline.rag import RagSettings, build_context, context_recall
    from pipeline.search.project import open_from_config
    from pipeline.store.scope import Scope

    root = Path(args.root)
    params = read_params(root / "params.yaml")
    searcher = open_from_config(root, params)
    table = pq.read_table(root / params["paths"]["records"], columns=["id", "prompt"])
    rng = np.random.default_rng(0)
    picks = rng.choice(table.num_rows, min(args.queries, table.num_rows), replace=False)
    ids, prompts = table["id"].to_pylist(), table["prompt"].to_pylist()
    questions = [(ids[i], " ".join(prompts[i].split()[:12])) for i in picks.tolist()]
    base = RagSettings.from_cfg(params["rag"])
    scope = Scope.all()
    build_context(searcher, "warm up the encoder and tokenizer", base, scope=scope)

    lines = [
        f"{len(questions)} questions from {table.num_rows} sample records; tokenizer "
        f"{base.tokenizer}; k = {base.candidates}; times per question in ms.",
        "",
        "| what | budget | p50 ms | p95 ms | passages | tokens | dropped | self in context |",
        "|---|---|---|---|---|---|---|---|",
    ]
    search_ms = []
    for _, text in questions:
        started = time.perf_counter()
        searcher.search(text, k=base.candidates, mode=base.mode, scope=scope)
        search_ms.append((time.perf_counter() - started) * 1000)
    lines.append(
        f"| hybrid search (baseline) | - | {percentile(search_ms, 0.5):.1f} | "
        f"{percentile(search_ms, 0.95):.1f} | - | - | - | - |"
    )
    for budget in (500, 1500, 4000):
        settings = dataclasses.replace(base, budget_tokens=budget)
        took, passages, tokens, dropped, recall = [], [], [], [], []
        for record_id, text in questions:
            ctx = build_context(searcher, text, settings, scope=scope)
            took.append(ctx.took_ms)
            passages.append(len(ctx.citations))
            tokens.append(ctx.tokens)
            dropped.append(len(ctx.dropped))
            recall.append(context_recall(ctx, {record_id}))
        lines.append(
            f"| rag context | {budget} | {percentile(took, 0.5):.1f} | "
            f"{percentile(took, 0.95):.1f} | {statistics.mean(passages):.1f} | "
            f"{statistics.mean(tokens):.0f} | {statistics.mean(dropped):.1f} | "
            f"{statistics.mean(recall):.2f} |"
        )
    searcher.close()
    print("\n".join(lines))
    append_section(
        "RAG context build (pipeline rag) on the sample",
        f"python benchmarks/rag.py --queries {args.queries}",
        lines,
    )


if __name__ == "__main__":
    main()
