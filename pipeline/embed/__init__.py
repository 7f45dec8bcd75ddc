"""Sentence embeddings of records, cached by content hash and model id.

Public API (used by the linear probe and the index stage):
    EmbedSettings.from_cfg(cfg.embed)
    text_of(prompt, response, settings) -> str
    embed_texts(texts, settings, cache_dir=None, progress=False) -> float32 (n, dim), L2-normalised
"""

from pipeline.embed.api import EmbedSettings, embed_texts, text_of

__all__ = ["EmbedSettings", "embed_texts", "text_of"]
