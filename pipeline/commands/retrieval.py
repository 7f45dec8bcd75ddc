"""`pipeline retrieval` (the DVC `retrieval` stage): search quality on judged queries."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pipeline.commands.options import add_config_options, load_config


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `retrieval` subcommand (imports nothing heavy)."""
    parser = sub.add_parser(
        "retrieval",
        help="recall@k, MRR@k, nDCG@k of every search variant (a DVC stage)",
        description="Run every variant of params.yaml `retrieval.variants` on the judged "
        "queries (paths.judgments, from `pipeline stats feedback`) and on the bootstrap set "
        "derived from the kept records; write reports/retrieval.json and an MLflow run.",
    )
    add_config_options(parser)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from pipeline.cli import emit
    from pipeline.stages.retrieval import run

    report = run(load_config(args), Path(args.root))
    emit(report, args.json, summary(report))
    return 0


def summary(report: dict[str, Any]) -> str:
    """One line per query set and variant: the three figures and the median latency."""
    k = report["k"]
    lines = []
    for name in ("judged", "bootstrap"):
        section = report[name]
        lines.append(f"{name} ({section['queries']} queries):")
        if not section["queries"]:
            continue
        for variant, m in section.items():
            if not isinstance(m, dict):
                continue
            p50 = report["latency_ms"][name][variant].get("p50", 0.0)
            lines.append(
                f"  {variant:<16} recall@{k} {m[f'recall@{k}']:.3f}  MRR@{k} {m[f'mrr@{k}']:.3f}"
                f"  nDCG@{k} {m[f'ndcg@{k}']:.3f}  p50 {p50:.1f} ms"
            )
        if "context_recall" in section:
            p50 = report["latency_ms"][name]["rag_context"].get("p50", 0.0)
            lines.append(
                f"  {'rag context':<16} recall {section['context_recall']:.3f} on "
                f"{section['context_queries']} queries, {section['context_tokens']:.0f} tokens"
                f"  p50 {p50:.1f} ms"
            )
    return "\n".join(lines)
