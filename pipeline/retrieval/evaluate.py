"""Every search variant over a query set: mean recall@k, MRR@k, nDCG@k and latencies."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.errors import UserInputError
from pipeline.retrieval.bootstrap import Query
from pipeline.retrieval.metrics import mrr_at_k, ndcg_at_k, recall_at_k, relevant
from pipeline.search.diversity import DIVERSITIES
from pipeline.store.scope import Scope

DIGITS = 4  # the metric file's precision: the same index and queries give the same file


@dataclass(frozen=True)
class Variant:
    """A way of searching the evaluation compares: a mode and a diversity."""

    name: str
    mode: str
    diversity: str = "none"


def variants_from_cfg(specs: Sequence[str]) -> list[Variant]:
    """`retrieval.variants` (`mode` or `mode:diversity` each) as Variants, checked."""
    out = []
    for spec in specs:
        mode, _, diversity = str(spec).partition(":")
        diversity = diversity or "none"
        if mode not in ("vector", "keyword", "hybrid") or diversity not in DIVERSITIES:
            raise UserInputError(
                f"retrieval.variants: {spec!r}; expected vector|keyword|hybrid, optionally "
                f"with :{'|'.join(DIVERSITIES)}"
            )
        name = mode if diversity == "none" else f"{mode}_{diversity}"
        out.append(Variant(name, mode, diversity))
    if len({v.name for v in out}) < len(out):
        raise UserInputError(f"retrieval.variants: {list(specs)} names a variant twice")
    return out


def evaluate(
    searcher: Any,
    queries: Sequence[Query],
    variants: Sequence[Variant],
    k: int,
    relevant_grade: float,
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """(metrics per variant, latency percentiles per variant in ms) over `queries`."""
    metrics: dict[str, dict[str, float]] = {}
    latency: dict[str, dict[str, float]] = {}
    for variant in variants:
        recall, mrr, ndcg, took = [], [], [], []
        for q in queries:
            wanted = relevant(q.grades, relevant_grade)
            started = time.perf_counter()
            hits = searcher.search(
                q.text, k=k, mode=variant.mode, filters=q.filters, scope=Scope.all(),
                diversity=variant.diversity,
            )  # fmt: skip
            took.append((time.perf_counter() - started) * 1000)
            ranked = [h.id for h in hits]
            recall.append(recall_at_k(ranked, wanted, k))
            mrr.append(mrr_at_k(ranked, wanted, k))
            ndcg.append(ndcg_at_k(ranked, q.grades, k))
        metrics[variant.name] = {
            f"recall@{k}": _mean(recall),
            f"mrr@{k}": _mean(mrr),
            f"ndcg@{k}": _mean(ndcg),
        }
        latency[variant.name] = percentiles(took)
    return metrics, latency


def _mean(values: list[float]) -> float:
    return round(float(np.mean(values)), DIGITS) if values else 0.0


def percentiles(took: list[float]) -> dict[str, float]:
    """p50, p95 and p99 of `took` (ms), rounded; empty for no samples."""
    if not took:
        return {}
    return {f"p{p}": round(float(np.percentile(took, p)), 3) for p in (50, 95, 99)}
