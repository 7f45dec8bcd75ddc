"""What a network reads, from texts to tensors: cached sentence vectors or token ids.

Each network class declares `input_kind`; `model_inputs` is the one place the two kinds are
told apart. Training, inference, the MLflow input example and the ONNX export all go
through the object it returns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import UserInputError

# MLflow stores the input example beside the model (input_example.json): it must not be
# derived from any record, or an erased user's text (or its token ids or embedding) would
# outlive the erasure in every run's artifacts (docs/erasure.md).
EXAMPLE_TEXTS = ("an example prompt", "another example prompt, a little longer")


class InputKind(StrEnum):
    """The inputs a network's `forward` takes."""

    EMBEDDING = "embedding"  # (embedding,): MiniLM sentence vectors, cached by content hash
    TOKENS = "tokens"  # (input_ids, attention_mask): MiniLM token ids, padded per batch

    @classmethod
    def of(cls, net: Any) -> InputKind:
        """The kind a network declares, or an error naming its class."""
        value = getattr(net, "input_kind", None)
        try:
            return cls(value)
        except ValueError:
            kinds = ", ".join(k.value for k in cls)
            raise UserInputError(
                f"{type(net).__name__}.input_kind is {value!r}: expected one of {kinds}"
            ) from None


@dataclass(frozen=True)
class EmbeddingInputs:
    """Texts -> sentence vectors (the embed settings and cache the index stage shares)."""

    embed: Mapping[str, Any] = field(default_factory=dict)  # conf/embed
    cache_dir: Path | None = None
    kind = InputKind.EMBEDDING
    sequence_axis = False  # the second axis is the embedding width, fixed

    def features(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """One float32 row per text."""
        from pipeline.embed import EmbedSettings, embed_texts

        settings = EmbedSettings.from_cfg(self.embed)
        return embed_texts(list(texts), settings, cache_dir=self.cache_dir, progress=progress)

    def tensors(self, rows: Sequence[np.ndarray]) -> tuple[Any, ...]:
        """`forward`'s inputs for some rows of features: (embedding,)."""
        import torch

        return (torch.from_numpy(np.stack(list(rows)).astype(np.float32)),)

    def example(self, features: Any, rows: int = 2) -> np.ndarray:
        """MLflow's input example: unit vectors of the features' width (only it is read)."""
        dim = int(np.asarray(features[:1]).shape[1])
        return np.full((rows, dim), 1.0 / np.sqrt(dim), dtype=np.float32)


@dataclass(frozen=True)
class TokenInputs:
    """Texts -> MiniLM token ids, truncated to `max_length`, padded per batch."""

    max_length: int = 128
    kind = InputKind.TOKENS
    sequence_axis = True  # batches are padded to their own longest row

    def features(self, texts: Sequence[str], progress: bool = False) -> list[np.ndarray]:
        """One int64 array of token ids per text."""
        from pipeline.train.tokenize import encode

        return encode(list(texts), max_length=self.max_length)

    def tensors(self, rows: Sequence[np.ndarray]) -> tuple[Any, ...]:
        """`forward`'s inputs for some rows of features: (input_ids, attention_mask)."""
        from pipeline.train.tokenize import pad_batch

        return pad_batch(list(rows))

    def example(self, features: Any, rows: int = 2) -> np.ndarray:
        """MLflow's input example: the padded ids of EXAMPLE_TEXTS (`features` is not read)."""
        return self.tensors(self.features(EXAMPLE_TEXTS[:rows]))[0].numpy()


ModelInputs = EmbeddingInputs | TokenInputs


def model_inputs(
    kind: InputKind,
    embed: Mapping[str, Any] | None = None,
    cache_dir: Path | None = None,
    max_length: int = 128,
) -> ModelInputs:
    """The inputs of a network of `kind`: the only branch on the kind."""
    if kind is InputKind.EMBEDDING:
        return EmbeddingInputs(dict(embed or {}), cache_dir)
    return TokenInputs(max_length)


@dataclass(frozen=True)
class Collate:
    """A DataLoader's collate_fn: rows of (features, label) -> (*inputs, labels)."""

    inputs: ModelInputs

    def __call__(self, batch: Sequence[tuple[np.ndarray, int]]) -> tuple[Any, ...]:
        import torch

        labels = torch.tensor([label for _, label in batch], dtype=torch.long)
        return (*self.inputs.tensors([row for row, _ in batch]), labels)
