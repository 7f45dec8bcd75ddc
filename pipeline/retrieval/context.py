"""Context recall for the retrieval stage: per query set, how often the judged relevant records
are cited in the RAG context `pipeline rag` would build for the query (pipeline/rag/).

The context is built exactly as `pipeline rag` builds it (conf/rag/: mode, candidates,
neighbours, merging, the token budget and tokenizer), within the query's filters and the
whole store's scope; no generator is called. A record merged into a near-identical passage
or added as a neighbouring turn counts: the generator would read its text. Costs one more
retrieval (rag.candidates hits) plus the packing per query.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pipeline.rag.recall import query_context_recall
from pipeline.rag.settings import RagSettings
from pipeline.retrieval.bootstrap import Query
from pipeline.retrieval.evaluate import DIGITS, percentiles
from pipeline.retrieval.metrics import relevant
from pipeline.store.scope import Scope

# The rag settings the figure depends on, repeated in the metric file so a diff shows why.
RAG_KEYS = ("mode", "candidates", "budget_tokens", "tokenizer", "neighbours", "merge_jaccard")


def rag_settings(cfg: Mapping[str, Any] | None) -> RagSettings:
    """conf/rag/ as typed settings (the code's defaults where params.yaml is silent)."""
    return RagSettings.from_cfg(cfg)


def describe(settings: RagSettings) -> dict[str, Any]:
    """The settings the context recall was measured with, for the report."""
    return {key: getattr(settings, key) for key in RAG_KEYS}


def context_figures(
    searcher: Any, queries: Sequence[Query], settings: RagSettings, relevant_grade: float
) -> tuple[dict[str, float], dict[str, float]]:
    """({context_recall, context_tokens} means over `queries`, build latency percentiles ms)."""
    recall, tokens, took = [], [], []
    for q in queries:
        wanted = relevant(q.grades, relevant_grade)
        started = time.perf_counter()
        score, context = query_context_recall(
            searcher, q.text, wanted, settings, scope=Scope.all(), filters=q.filters
        )
        took.append((time.perf_counter() - started) * 1000)
        recall.append(score or 0.0)  # every query here has a relevant record: never None
        tokens.append(context.tokens)
    figures = {
        "context_recall": round(float(np.mean(recall)), DIGITS) if recall else 0.0,
        "context_tokens": round(float(np.mean(tokens)), 1) if tokens else 0.0,
    }
    return figures, percentiles(took)
