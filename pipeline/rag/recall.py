"""Context recall for the retrieval evaluation: were a query's judged relevant records in the
packed context a generator would have read?"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from pipeline.rag.context import RagContext, build_context
from pipeline.rag.settings import RagSettings
from pipeline.retrieval.metrics import context_recall as ids_recall
from pipeline.store.scope import Scope


def context_recall(context: RagContext, relevant: Collection[str]) -> float | None:
    """The fraction of `relevant` record ids cited in `context` (None when none are judged).

    A record merged into a near-identical passage counts as present: its text is there.
    Neighbouring turns count too: the generator reads them like any passage.
    """
    if not relevant:
        return None
    return ids_recall(context.cited_ids(), relevant)


def query_context_recall(
    searcher: Any,
    question: str,
    relevant: Collection[str],
    settings: RagSettings,
    *,
    scope: Scope,
    filters: Sequence[Any] = (),
) -> tuple[float | None, RagContext]:
    """Build the context for one judged query and score it: (recall, the context)."""
    context = build_context(searcher, question, settings, scope=scope, filters=filters)
    return context_recall(context, relevant), context
