"""Texts -> the exported graph's inputs, as the spec says, with numpy and ONNX Runtime only.

The same functions as training, without torch: the encoder's ONNX export (run as
pipeline/predict/runtime.py says), MiniLM token ids through pipeline/train/tokenize.py
(numpy padding), and the hybrid's hashed n-grams through pipeline/predict/hashing.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.predict.spec import PredictorSpec


class Featuriser:
    """Turns a batch of model-input texts into ({input name: array}, truncated flags)."""

    def __init__(
        self,
        spec: PredictorSpec,
        embed_cache: Path,
        threads: int = 0,
        *,
        cached: bool = False,
        spin: bool = False,
        encode_batch: int = 16,
    ) -> None:
        self.spec = spec
        self._encoder: Any = None
        self._cache: Any = None
        self.cache_hits = 0
        if spec.encoder is not None:
            self._encoder = _encoder(spec, embed_cache, threads or _cores(), spin, encode_batch)
            if cached and spec.encoder.id:
                # The vectors training computed for these very texts (the predictions stage:
                # every kept record was embedded by train); misses go through the ONNX export.
                from pipeline.embed.cache import EmbeddingCache

                self._cache = EmbeddingCache(embed_cache, spec.encoder.id, spec.encoder.dim)

    def __call__(self, texts: Sequence[str]) -> tuple[dict[str, np.ndarray], list[bool]]:
        """The graph's feed for `texts` and, per text, whether its tokens were cut."""
        spec, texts = self.spec, list(texts)
        if spec.input_kind == "tokens":
            from pipeline.train.tokenize import encode_flagged, pad_ids

            ids, truncated = encode_flagged(texts, int(spec.max_length or 128))
            return dict(zip(spec.inputs, pad_ids(ids), strict=True)), truncated
        vectors, truncated = self._vectors(texts)
        if spec.input_kind == "embedding+lexical":
            from pipeline.predict.hashing import hashed_rows

            lex = spec.lexical
            assert lex is not None  # from_dict checked the kind; evaluate writes both
            counts = hashed_rows(texts, lex.n_features, lex.word_ngrams, lex.char_ngrams)
            vectors = np.hstack([vectors.astype(np.float32), counts])
        return {spec.inputs[0]: np.ascontiguousarray(vectors, dtype=np.float32)}, truncated

    def _vectors(self, texts: list[str]) -> tuple[np.ndarray, list[bool]]:
        """Sentence vectors and truncated flags: cache hits when asked for, else ONNX."""
        if self._cache is None:
            return self._encoder.encode_flagged(texts)
        from pipeline.embed.models import tokenize_flagged

        found, vectors = self._cache.lookup(self._cache.keys(texts))
        _, truncated = tokenize_flagged(self._encoder.tokenizer, texts)
        missing = np.flatnonzero(~found)
        if len(missing):
            vectors[missing] = self._encoder.encode_flagged([texts[i] for i in missing])[0]
        self.cache_hits += int(found.sum())
        return vectors, truncated


def _encoder(spec: PredictorSpec, cache: Path, threads: int, spin: bool, batch: int) -> Any:
    """The export search and training use (int8 if the model was trained on int8 vectors)."""
    from pipeline.embed.api import EmbedSettings
    from pipeline.embed.onnx_paths import TOKENIZER_FILE, is_exported, onnx_dir
    from pipeline.embed.query import query_model_file
    from pipeline.errors import NotFoundError, UserInputError
    from pipeline.predict.runtime import Encoder

    e = spec.encoder
    assert e is not None
    directory = onnx_dir(e.model, cache)
    if not is_exported(directory):
        raise NotFoundError(
            f"{directory}: no ONNX export of {e.model}; run `dvc repro` (train and index export it)"
        )
    settings = EmbedSettings(model=e.model, dim=e.dim, backend=e.backend, max_length=e.max_length)
    encoder = Encoder(query_model_file(settings, cache), directory / TOKENIZER_FILE,
                      e.max_length, threads, spin, batch)  # fmt: skip
    if encoder.dim != e.dim:
        raise UserInputError(
            f"the model was trained on {e.dim}-dimensional {e.model} vectors; the "
            f"ONNX export under {cache} gives {encoder.dim}"
        )
    return encoder


def _cores() -> int:
    from pipeline.embed.models import cpu_count

    return cpu_count()
