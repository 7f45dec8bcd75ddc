"""Sentence embeddings of records, cached by content hash and model id.

Public API (used by the linear probe and the index stage):
    EmbedSettings.from_cfg(cfg.embed)
    text_of(prompt, response, settings) -> str
    embed_texts(texts, settings, cache_dir=None, progress=False) -> float32 (n, dim), L2-normalised
    embed(...) -> EmbedResult(vectors, encoded, cached)   the same, with cache statistics
Queries (no torch): pipeline.embed.query.QueryEncoder, ensure_query_model.
"""

from pipeline.embed.api import EmbedResult, EmbedSettings, embed, embed_texts, text_of

__all__ = ["EmbedResult", "EmbedSettings", "embed", "embed_texts", "text_of"]
