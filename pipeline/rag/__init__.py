"""Grounded context for a generator (RAG), and optional generation (docs/rag.md).

Public API:
    RagSettings.from_cfg(cfg.rag)
    build_context(searcher, question, settings, scope=..., filters=()) -> RagContext
    pipeline.rag.generate.generate(context, settings.generator) -> Answer  (OpenAI-compatible)
    context_recall(context, relevant_ids) -> float | None  (for the retrieval evaluation)
    query_context_recall(searcher, question, relevant_ids, settings, scope=...)
"""

from pipeline.rag.context import RagContext, build_context
from pipeline.rag.recall import context_recall, query_context_recall
from pipeline.rag.settings import GeneratorSettings, RagSettings

__all__ = [
    "GeneratorSettings",
    "RagContext",
    "RagSettings",
    "build_context",
    "context_recall",
    "query_context_recall",
]
