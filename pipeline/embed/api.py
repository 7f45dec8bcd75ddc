"""Embedding entry points. Torch is imported only when texts must actually be encoded."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.embed.cache import EmbeddingCache
from pipeline.embed.models import slug, tokenize
from pipeline.embed.ray_embed import EmbedRaySettings
from pipeline.errors import UserInputError

BACKENDS = ("torch", "onnx", "onnx-int8")
TEXT_MODES = ("prompt", "prompt_response")
PRECISIONS = ("auto", "float32", "bfloat16")
ENGINES = ("local", "ray")


@dataclass(frozen=True)
class EmbedSettings:
    model: str = "all-MiniLM-L6-v2"  # the bundled encoder, or a local HF model directory
    dim: int = 384
    text: str = "prompt"  # prompt | prompt_response
    backend: str = "torch"  # torch | onnx | onnx-int8 (ONNX Runtime, exported once)
    precision: str = "auto"  # torch only: auto (bf16 if the CPU has it) | float32 | bfloat16
    batch_size: int = 64
    max_length: int = 256  # tokens; the model was trained at 256
    flush_every: int = 2048  # vectors per cache shard: a killed run keeps what it encoded
    # Where the texts missing from the cache are encoded: this process, or Ray Data
    # (`ray_embed.py`, docs/scaling.md#embedding-on-ray). The cache is the same either way.
    engine: str = "local"  # local | ray
    ray: EmbedRaySettings = field(default_factory=EmbedRaySettings)

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any]) -> EmbedSettings:
        known = {k: cfg[k] for k in cls.__dataclass_fields__ if k in cfg}
        if "ray" in known:
            known["ray"] = EmbedRaySettings.from_cfg(known["ray"])
        settings = cls(**known)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Fail with one line naming the config key that is wrong."""
        if self.backend not in BACKENDS:
            raise UserInputError(f"embed.backend {self.backend!r}: expected one of {BACKENDS}")
        if self.precision not in PRECISIONS:
            raise UserInputError(
                f"embed.precision {self.precision!r}: expected one of {PRECISIONS}"
            )
        if self.text not in TEXT_MODES:
            raise UserInputError(f"embed.text {self.text!r}: expected one of {TEXT_MODES}")
        for key in ("dim", "batch_size", "max_length", "flush_every"):
            if int(getattr(self, key)) < 1:
                raise UserInputError(f"embed.{key}: must be a positive integer")
        if self.engine not in ENGINES:
            raise UserInputError(f"embed.engine {self.engine!r}: expected one of {ENGINES}")
        if self.engine == "ray" and self.backend == "torch":
            raise UserInputError(
                "embed.engine=ray runs the ONNX export on its workers: set embed.backend to "
                "onnx or onnx-int8 (embed.backend=torch runs with embed.engine=local)"
            )


@dataclass(frozen=True)
class EmbedResult:
    vectors: np.ndarray  # float32 (n, dim), L2-normalised
    encoded: int  # distinct texts run through the encoder
    cached: int  # texts served from the cache


def text_of(prompt: str, response: str | None, settings: EmbedSettings) -> str:
    """The text that represents a record for embedding."""
    if settings.text == "prompt_response" and response:
        return f"{prompt}\n{response}"
    return prompt


def encoder_id(settings: EmbedSettings) -> str:
    """Names the exact function text -> vector: model, backend, numeric precision, max_length."""
    if settings.backend == "torch":
        from pipeline.embed.torch_encoder import resolve_precision

        flavour = resolve_precision(settings.precision)
    else:
        from pipeline.embed.onnx_paths import EXPORT_VERSION

        quant = "int8" if settings.backend == "onnx-int8" else "float32"
        flavour = f"{quant}-v{EXPORT_VERSION}"
    return slug(settings.model, settings.backend.split("-")[0], flavour, f"L{settings.max_length}")


_ENCODERS: dict[tuple[Any, ...], Any] = {}


def _encoder(settings: EmbedSettings, cache_dir: str | Path | None) -> Any:
    """The loaded encoder for `settings`, kept for the life of the process."""
    # The ONNX backends read their export from cache_dir; the torch model does not.
    where = None if settings.backend == "torch" else cache_dir
    key = (settings.model, settings.backend, settings.precision, settings.max_length, where)
    if key not in _ENCODERS:
        if settings.backend == "torch":
            from pipeline.embed.torch_encoder import TorchEncoder

            _ENCODERS[key] = TorchEncoder(settings.model, settings.max_length, settings.precision)
        else:
            from pipeline.embed.onnx_encoder import OnnxEncoder
            from pipeline.embed.onnx_export import ensure_onnx
            from pipeline.embed.onnx_paths import FLOAT_FILE, INT8_FILE, TOKENIZER_FILE

            # Without a cache dir the export lives as long as the process.
            base = cache_dir if cache_dir is not None else tempfile.mkdtemp(prefix="embed-onnx-")
            directory = ensure_onnx(settings.model, base)
            weights = INT8_FILE if settings.backend == "onnx-int8" else FLOAT_FILE
            _ENCODERS[key] = OnnxEncoder(
                directory / weights, directory / TOKENIZER_FILE, settings.max_length
            )
    return _ENCODERS[key]


def embed(
    texts: Sequence[str],
    settings: EmbedSettings,
    cache_dir: str | Path | None = None,
    progress: bool = False,
) -> EmbedResult:
    """Embed `texts`, encoding only those not in the cache; report how many were encoded."""
    settings.validate()
    n = len(texts)
    if n == 0:
        return EmbedResult(np.zeros((0, settings.dim), dtype=np.float32), 0, 0)
    texts = [str(t) for t in texts]
    cache = EmbeddingCache(cache_dir, encoder_id(settings), settings.dim) if cache_dir else None
    if cache is not None:
        keys = cache.keys(texts)
        found, vectors = cache.lookup(keys)
    else:
        keys, found = None, np.zeros(n, dtype=bool)
        vectors = np.zeros((n, settings.dim), dtype=np.float32)
    # Each distinct missing text is encoded once, however often it repeats.
    missing = np.flatnonzero(~found)
    first_of: dict[str, int] = {}
    for i in missing:
        first_of.setdefault(texts[i], int(i))
    todo = np.fromiter(first_of.values(), dtype=np.int64, count=len(first_of))
    if len(todo):
        encoded = _encode(texts, todo, keys, settings, cache_dir, cache, progress)
        vectors[todo] = encoded
        index_of = {texts[i]: row for row, i in enumerate(todo)}
        for i in missing:
            vectors[i] = encoded[index_of[texts[i]]]
        if cache is not None:
            cache.compact()
    return EmbedResult(vectors, encoded=len(todo), cached=int(found.sum()))


def _encode(
    texts: Sequence[str],
    todo: np.ndarray,
    keys: np.ndarray | None,
    settings: EmbedSettings,
    cache_dir: str | Path | None,
    cache: EmbeddingCache | None,
    progress: bool,
) -> np.ndarray:
    from tqdm import tqdm

    pending: list[tuple[np.ndarray, np.ndarray]] = []
    bar = tqdm(total=len(todo), desc="embed", unit="text", disable=not progress, leave=False)

    def flush() -> None:
        if cache is not None and keys is not None and pending:
            rows = todo[np.concatenate([p for p, _ in pending])]
            # The texts let the cache drop any erased meanwhile (its tombstones).
            cache.add(keys[rows], np.concatenate([v for _, v in pending]), [texts[i] for i in rows])
        pending.clear()

    def on_batch(positions: np.ndarray, batch: np.ndarray) -> None:
        bar.update(len(positions))
        pending.append((positions, batch))
        if sum(len(p) for p, _ in pending) >= settings.flush_every:
            flush()

    try:
        if settings.engine == "ray":
            from pipeline.embed.ray_embed import encode_on_ray

            out = encode_on_ray([texts[i] for i in todo], settings, cache_dir, on_batch)
        else:
            encoder = _encoder(settings, cache_dir)
            if encoder.dim != settings.dim:
                raise UserInputError(
                    f"embed.dim is {settings.dim} but {settings.model} gives {encoder.dim}"
                )
            ids = tokenize(encoder.tokenizer, [texts[i] for i in todo])
            out = encoder.encode(ids, settings.batch_size, on_batch)
        flush()
    finally:
        bar.close()
    return out


def embed_texts(
    texts: Sequence[str],
    settings: EmbedSettings,
    cache_dir: str | Path | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Embed `texts`; rows are L2-normalised float32 vectors of `settings.dim`."""
    return embed(texts, settings, cache_dir, progress).vectors
