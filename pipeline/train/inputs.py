"""What a network reads, from texts to tensors: cached sentence vectors or token ids.

Each network class declares `input_kind`; `model_inputs` is the one place the kinds are
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
from pipeline.train.lexical import LexicalSettings

# MLflow stores the input example beside the model (input_example.json): it must not be
# derived from any record, or an erased user's text (or its token ids or embedding) would
# outlive the erasure in every run's artifacts (docs/erasure.md).
EXAMPLE_TEXTS = ("an example prompt", "another example prompt, a little longer")


class InputKind(StrEnum):
    """The inputs a network's `forward` takes."""

    EMBEDDING = "embedding"  # (embedding,): MiniLM sentence vectors, cached by content hash
    TOKENS = "tokens"  # (input_ids, attention_mask): MiniLM token ids, padded per batch
    EMBEDDING_LEXICAL = "embedding+lexical"  # (features,): sentence vector | hashed n-grams

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


@dataclass(frozen=True)
class EmbeddingLexicalInputs:
    """Texts -> [sentence vector | hashed n-gram counts], one sparse row per text.

    Rows stay sparse (CSR) until a batch is made, then are densified: one input tensor of
    fixed width, so the ONNX graph, the MLflow signature and the example are as simple as
    the probe's. The featuriser outside the graph is the embedder and the stateless hashing
    of `pipeline/train/lexical.py`; its settings live on the network (`net.lexical`).
    """

    embedding: EmbeddingInputs
    lexical: LexicalSettings
    kind = InputKind.EMBEDDING_LEXICAL
    sequence_axis = False

    def features(self, texts: Sequence[str], progress: bool = False) -> Any:
        """A CSR float32 matrix (len(texts), embedding dim + lexical width)."""
        import scipy.sparse as sp

        from pipeline.train.lexical import hashed_counts

        vectors = self.embedding.features(texts, progress=progress)
        counts = hashed_counts(texts, self.lexical)
        return sp.hstack([sp.csr_matrix(vectors), counts], format="csr", dtype=np.float32)

    def tensors(self, rows: Sequence[Any]) -> tuple[Any, ...]:
        """`forward`'s input for some rows of features (a CSR matrix or 1-row ones): (features,)."""
        import scipy.sparse as sp
        import torch

        matrix = rows if sp.issparse(rows) else sp.vstack(list(rows), format="csr")
        return (torch.from_numpy(matrix.toarray()),)

    def example(self, features: Any, rows: int = 2) -> np.ndarray:
        """MLflow's input example: unit vectors of the features' width (only it is read)."""
        dim = int(features.shape[1])
        return np.full((rows, dim), 1.0 / np.sqrt(dim), dtype=np.float32)


ModelInputs = EmbeddingInputs | TokenInputs | EmbeddingLexicalInputs


def model_inputs(
    kind: InputKind,
    embed: Mapping[str, Any] | None = None,
    cache_dir: Path | None = None,
    max_length: int = 128,
    lexical: LexicalSettings | None = None,
) -> ModelInputs:
    """The inputs of a network of `kind`: the only branch on the kind."""
    if kind is InputKind.EMBEDDING:
        return EmbeddingInputs(dict(embed or {}), cache_dir)
    if kind is InputKind.EMBEDDING_LEXICAL:
        return EmbeddingLexicalInputs(
            EmbeddingInputs(dict(embed or {}), cache_dir), lexical or LexicalSettings()
        )
    return TokenInputs(max_length)


@dataclass(frozen=True)
class Collate:
    """A DataLoader's collate_fn: rows of (features, label) -> (*inputs, labels)."""

    inputs: ModelInputs

    def __call__(self, batch: Sequence[tuple[np.ndarray, int]]) -> tuple[Any, ...]:
        import torch

        labels = torch.tensor([label for _, label in batch], dtype=torch.long)
        return (*self.inputs.tensors([row for row, _ in batch]), labels)
