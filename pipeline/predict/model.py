"""The predictor: a registered model version run with ONNX Runtime, without torch.

`Predictor.load(cfg, ref="champion")` (or a version number, or another alias), then
`predictor.predict(["How do I reset my password?"])[0].label`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.predict.settings import PredictSettings
from pipeline.predict.spec import ONNX_FILE, SPEC_FILE, PredictorSpec


@dataclass(frozen=True)
class Prediction:
    """One text's prediction: the label, its probability, the whole distribution, and
    whether the text was longer than the model reads (then cut as in training)."""

    label: str
    confidence: float
    probabilities: dict[str, float]
    truncated: bool

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return {"label": self.label, "confidence": self.confidence,
                "probabilities": dict(self.probabilities), "truncated": self.truncated}  # fmt: skip


class Predictor:
    """A loaded model version: `predict(texts)` is thread-safe (ONNX Runtime sessions are)."""

    def __init__(
        self,
        directory: Path,
        embed_cache: Path,
        *,
        name: str = "",
        version: str = "",
        run_id: str = "",
        batch_size: int = 64,
        threads: int = 0,
        cached: bool = False,
        spin: bool = False,
        encode_batch: int = 16,
    ) -> None:
        from pipeline.embed.models import cpu_count
        from pipeline.predict.features import Featuriser
        from pipeline.predict.runtime import session

        self.spec = PredictorSpec.read(directory / SPEC_FILE)
        self.name, self.version, self.run_id = name, version, run_id
        self.labels: list[str] = list(self.spec.labels)
        self.batch_size = max(1, batch_size)
        # The head is a few small products: one thread beats waking a pool (runtime.py).
        # A token model's whole network is this graph: it gets the configured threads.
        head_threads = (threads or cpu_count()) if self.spec.input_kind == "tokens" else 1
        self._session = session(directory / ONNX_FILE, head_threads, spin)
        # cached: read the sentence vectors training stored for the same texts (the
        # predictions stage); a served or CLI prediction always runs the ONNX encoder.
        self._featurise = Featuriser(self.spec, embed_cache, threads, cached=cached, spin=spin,
                                     encode_batch=encode_batch)  # fmt: skip

    @classmethod
    def load(
        cls, cfg_or_settings: Any, ref: str = "champion", root: Path = Path(), cached: bool = False
    ) -> Predictor:
        """The version `ref` (an alias or a version number) of the configured registered model."""
        from pipeline.predict.registry import fetch, resolve

        s = _settings(cfg_or_settings, root)
        found = resolve(s.tracking_uri, s.registered_model, str(ref))
        directory = fetch(s.tracking_uri, found, s.cache_dir)
        return cls(directory, s.embed_cache, name=found.name, version=found.version,
                   run_id=found.run_id, batch_size=s.batch_size, threads=s.threads,
                   cached=cached, spin=s.spin, encode_batch=s.encode_batch)  # fmt: skip

    def predict_proba(self, texts: Sequence[str]) -> tuple[np.ndarray, list[bool]]:
        """Probabilities (n, len(labels)) in the order of `labels`, and the truncated flags."""
        probs, truncated, _ = self._run(texts, keep_vectors=False)
        return probs, truncated

    def _run(
        self, texts: Sequence[str], keep_vectors: bool
    ) -> tuple[np.ndarray, list[bool], np.ndarray | None]:
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        truncated: list[bool] = []
        encoder = self.spec.encoder
        keep = keep_vectors and encoder is not None
        vectors = np.zeros((len(texts), encoder.dim), dtype=np.float32) if keep else None
        for start in range(0, len(texts), self.batch_size):
            feed, cut = self._featurise(texts[start : start + self.batch_size])
            (logits,) = self._session.run(["logits"], feed)
            out[start : start + len(logits)] = softmax(logits)
            truncated.extend(cut)
            if vectors is not None:  # the sentence vector leads an embedding kind's features
                vectors[start : start + len(logits)] = feed[self.spec.inputs[0]][:, : encoder.dim]
        return out, truncated, vectors

    def encodes_like(self, model: str, backend: str, max_length: int) -> bool:
        """Whether this model's sentence vectors are the ONNX export `model` at `max_length`
        tokens would give (int8 or not, as `backend` says): the search path's encoder."""
        e = self.spec.encoder
        int8 = backend == "onnx-int8"
        return e is not None and (e.model, e.backend == "onnx-int8", e.max_length) == (
            model, int8, max_length,
        )  # fmt: skip

    def predict_and_embed(self, texts: Sequence[str]) -> tuple[list[Prediction], np.ndarray | None]:
        """Predictions and the sentence vectors the model read (None for a token model), so a
        caller that logs embeddings does not run the encoder a second time."""
        probs, truncated, vectors = self._run(list(texts), keep_vectors=True)
        return self._predictions(probs, truncated), vectors

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """One Prediction per text, in order (the texts are the model's inputs as they are)."""
        probs, truncated = self.predict_proba(list(texts))
        return self._predictions(probs, truncated)

    def _predictions(self, probs: np.ndarray, truncated: list[bool]) -> list[Prediction]:
        best = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=np.int64)
        return [
            Prediction(
                label=self.labels[int(i)],
                confidence=float(row[i]),
                probabilities={label: float(p) for label, p in zip(self.labels, row, strict=True)},
                truncated=cut,
            )
            for i, row, cut in zip(best, probs, truncated, strict=True)
        ]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for large logits."""
    z = logits.astype(np.float32) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _settings(cfg_or_settings: Any, root: Path) -> PredictSettings:
    if isinstance(cfg_or_settings, PredictSettings):
        return cfg_or_settings
    if isinstance(cfg_or_settings, Mapping) or hasattr(cfg_or_settings, "get"):
        return PredictSettings.from_cfg(cfg_or_settings, root)
    raise TypeError(f"expected a config or PredictSettings, got {type(cfg_or_settings).__name__}")
