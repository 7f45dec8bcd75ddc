"""ONNX Runtime sessions and the sentence encoder as the predict path runs them.

The same graphs as training and search (the encoder's ONNX export, the evaluate stage's
model.onnx), with options chosen for serving, none of which changes an output:

- No spinning: by default ORT's idle pool threads busy-wait for the next operator. With
  several requests (or other processes) on the same cores they steal each other's time;
  on the shared 2-core machine one text's encode was ~1.5x faster without (docs/predict.md).
- The classifier head runs on one thread: it is a few small matrix products, which cost
  less than waking a pool.
- Texts are encoded longest first in sub-batches of `encode_batch`, each padded only to its
  own longest text: a batch of 64 mixed lengths otherwise pays 256 tokens for every text.
  Attention is masked and pooling is over real tokens, so padding does not change a vector
  beyond float rounding (tests/test_predict_runtime.py pins the predictions).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def session(path: Path, threads: int, spin: bool = False) -> Any:
    """A CPU InferenceSession over `path` with the predict path's options."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: ORT warns about unused initialisers
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class Encoder:
    """The sentence encoder's ONNX export: texts -> L2-normalised vectors, and truncation."""

    def __init__(
        self, onnx_path: Path, tokenizer_path: Path, max_length: int, threads: int, spin: bool,
        encode_batch: int,
    ) -> None:  # fmt: skip
        from pipeline.embed.models import load_tokenizer

        self.session = session(onnx_path, threads, spin)
        self.tokenizer = load_tokenizer(tokenizer_path, max_length)
        self.dim = int(self.session.get_outputs()[0].shape[-1])
        self.encode_batch = max(1, encode_batch)

    def encode_flagged(self, texts: Sequence[str]) -> tuple[np.ndarray, list[bool]]:
        """Vectors (n, dim) of `texts`, and whether each was cut at max_length tokens."""
        from pipeline.embed.models import length_sorted_batches, tokenize_flagged

        ids, truncated = tokenize_flagged(self.tokenizer, texts)
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        for positions, input_ids, mask in length_sorted_batches(ids, self.encode_batch):
            (vectors,) = self.session.run(None, {"input_ids": input_ids, "attention_mask": mask})
            out[positions] = vectors
        return out, truncated
