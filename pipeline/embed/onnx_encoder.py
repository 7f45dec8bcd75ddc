"""Encoding with ONNX Runtime and the `tokenizers` library only: no torch, no transformers.

The exported graph includes mean pooling and L2 normalisation, so its output is the
sentence embedding itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from pipeline.embed.models import cpu_count, length_sorted_batches, load_tokenizer


class OnnxEncoder:
    """One ONNX Runtime session over an exported encoder (float or int8): from its files, or
    from their bytes (a Ray worker gets them through the object store)."""

    def __init__(
        self,
        onnx_path: str | Path | bytes,
        tokenizer_path: str | Path | bytes,
        max_length: int,
        threads: int | None = None,
    ) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or cpu_count()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: ORT warns about unused initialisers
        model = onnx_path if isinstance(onnx_path, bytes) else str(onnx_path)
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self.tokenizer = load_tokenizer(tokenizer_path, max_length)
        self.dim = int(self.session.get_outputs()[0].shape[-1])

    def encode(
        self,
        ids: Sequence[Sequence[int]],
        batch_size: int,
        on_batch: Callable[[np.ndarray, np.ndarray], None] | None = None,
    ) -> np.ndarray:
        """Embed pre-tokenised texts; `on_batch(positions, vectors)` sees each batch as done."""
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        for positions, input_ids, mask in length_sorted_batches(ids, batch_size):
            (vectors,) = self.session.run(None, {"input_ids": input_ids, "attention_mask": mask})
            out[positions] = vectors
            if on_batch is not None:
                on_batch(positions, vectors)
        return out
