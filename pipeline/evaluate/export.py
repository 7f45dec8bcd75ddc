"""ONNX export of the classifier, checked against PyTorch on the same inputs (onnxruntime).

The exported graph takes the tensors `Classifier.export_inputs(texts)` returns and outputs
logits; batch and sequence axes are dynamic, so one file serves any batch of any length.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

OPSET = 17


def input_names(n: int) -> list[str]:
    """The exported graph's input names: input_0, input_1, ..."""
    return [f"input_{i}" for i in range(n)]


def export_onnx(
    module: Any, example_inputs: tuple[Any, ...], path: str | Path, sequence_axis: bool = True
) -> Path:
    """Export `module` (forward(*inputs) -> logits) to `path` with dynamic batch/sequence axes.

    `sequence_axis=False` for inputs whose second axis is a fixed width (embeddings).
    """
    import torch

    names = input_names(len(example_inputs))
    # Every input is (batch, ...); for token inputs the second axis is the sequence. Logits
    # are (batch, n_labels), so only their first axis varies.
    dynamic_axes: dict[str, dict[int, str]] = {
        name: ({0: "batch", 1: "sequence"} if sequence_axis and t.dim() >= 2 else {0: "batch"})
        for name, t in zip(names, example_inputs, strict=True)
    }
    dynamic_axes["logits"] = {0: "batch"}
    module.eval()
    path = Path(path)
    with torch.no_grad():
        # The TorchScript exporter (dynamo=False): it traces a MiniLM encoder in seconds on
        # 2 cores where the torch.export path takes minutes, and gives the same graph ops.
        torch.onnx.export(
            module,
            tuple(example_inputs),
            str(path),
            input_names=names,
            output_names=["logits"],
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
            dynamo=False,
        )
    return path


def onnx_session(path: str | Path, threads: int = 0) -> Any:
    """An onnxruntime CPU session over the exported file."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def max_abs_difference(
    module: Any,
    session: Any,
    batches: Iterable[tuple[Any, ...]],
) -> float:
    """Largest |logit_torch - logit_onnx| over all `batches` of export inputs."""
    import torch

    module.eval()
    names = [i.name for i in session.get_inputs()]
    worst = 0.0
    with torch.no_grad():
        for inputs in batches:
            expected = module(*inputs).float().numpy()
            feed = {name: t.numpy() for name, t in zip(names, inputs, strict=True)}
            got = session.run(["logits"], feed)[0]
            worst = max(worst, float(np.max(np.abs(expected - got))) if got.size else 0.0)
    return worst


def batched_inputs(
    export_inputs: Callable[[Sequence[str]], tuple[Any, ...]],
    texts: Sequence[str],
    batch_size: int = 64,
) -> Iterable[tuple[Any, ...]]:
    """Yield `export_inputs` of consecutive batches of `texts` (bounded memory on long tests)."""
    for start in range(0, len(texts), batch_size):
        yield export_inputs(texts[start : start + batch_size])
