"""Export the encoder to ONNX once per model, into the cache directory (needs torch).

`<cache_dir>/onnx/<model>/` holds `model.onnx` (float32, with ONNX Runtime's BERT fusions:
one Attention op per layer, fused LayerNorm and GELU), `model.int8.onnx` (the same graph
with dynamically quantised int8 weights, per channel), `tokenizer.json` and `meta.json`.
The directory is published atomically, so a reader sees all files or none.
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from pathlib import Path
from typing import Any

from pipeline.embed.models import model_dir
from pipeline.embed.onnx_paths import (
    FLOAT_FILE,
    INT8_FILE,
    META_FILE,
    TOKENIZER_FILE,
    is_exported,
    onnx_dir,
)
from pipeline.io.atomic import atomic_dir
from pipeline.io.lock import exclusive

OPSET = 17


def ensure_onnx(model: str, cache_dir: str | Path) -> Path:
    """Export `model` to ONNX under `cache_dir` unless already there; return the directory."""
    target = onnx_dir(model, cache_dir)
    if is_exported(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Two stages starting together would both spend ~10 s exporting; one waits instead.
    with exclusive(target.parent / f".{target.name}.lock", "onnx export", wait=None):
        if not is_exported(target):
            with atomic_dir(target) as tmp:
                _export(model, tmp)
    return target


def _export(model: str, out: Path) -> None:
    """Trace the pooled encoder, fuse it for ORT, quantise a twin; tokenizer and meta beside."""
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    source = model_dir(model)
    # Eager attention exports as plain MatMul/Softmax, the pattern ORT's optimizer fuses.
    hf_logging.disable_progress_bar()
    encoder = AutoModel.from_pretrained(str(source), attn_implementation="eager").eval()
    raw = out / "raw.onnx"
    _trace(encoder, raw)
    fused = _fuse(raw, encoder.config, out / FLOAT_FILE)
    raw.unlink()
    _quantise(out / FLOAT_FILE, out / INT8_FILE)
    shutil.copyfile(source / TOKENIZER_FILE, out / TOKENIZER_FILE)
    meta = {
        "model": model,
        "dim": int(encoder.config.hidden_size),
        "opset": OPSET,
        "files": {"float": FLOAT_FILE, "int8": INT8_FILE, "tokenizer": TOKENIZER_FILE},
        "torch": torch.__version__,
        "fused_ops": {k: v for k, v in fused.get_fused_operator_statistics().items() if v},
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def _trace(encoder: Any, path: Path) -> None:
    """Export encoder + mean pooling + L2 norm to ONNX, batch and token axes dynamic."""
    import torch

    example = torch.ones((2, 8), dtype=torch.long)
    # The tracer warns that mask-padding branches become constants: they do not depend on the
    # input shape for an encoder without a KV cache (parity is checked in the tests).
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _pooled_module(encoder),
            (example, example),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "tokens"},
                "attention_mask": {0: "batch", 1: "tokens"},
                "embedding": {0: "batch"},
            },
            opset_version=OPSET,
            dynamo=False,  # the TorchScript exporter gives the graph ORT's BERT fusions expect
        )


def _fuse(raw: Path, config: Any, path: Path) -> Any:
    """ORT's BERT fusions (Attention, LayerNorm, GELU) of `raw`, saved to `path`."""
    from onnxruntime.transformers import optimizer

    fused = optimizer.optimize_model(
        str(raw),
        model_type="bert",
        num_heads=int(config.num_attention_heads),
        hidden_size=int(config.hidden_size),
        opt_level=1,
    )
    fused.save_model_to_file(str(path))
    return fused


def _quantise(float_path: Path, int8_path: Path) -> None:
    """Dynamic int8 weights per channel, but the feed-forward outputs stay float32."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic logs a pre-processing hint on the root logger
    try:
        quantize_dynamic(
            str(float_path),
            str(int8_path),
            weight_type=QuantType.QInt8,
            per_channel=True,
            nodes_to_exclude=_ffn_output_matmuls(float_path),
            # The fused contrib ops defeat shape inference; their outputs are float32.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        root.setLevel(level)


def _ffn_output_matmuls(path: Path) -> list[str]:
    """The feed-forward output projections (after GELU), which int8 hurts most.

    Measured on 300 t0-prompts: quantising every MatMul gives min cosine 0.986 to float;
    keeping these six in float32 gives 0.993 and keeps most of the speed-up.
    """
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    names = [
        n.name
        for n in graph.node
        if n.op_type == "MatMul" and "/output/dense/" in n.name and "/attention/" not in n.name
    ]
    if not names:
        raise RuntimeError(f"{path}: no feed-forward output MatMul found; exporter naming changed")
    return names


def _pooled_module(encoder: Any) -> Any:
    import torch

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            # The same maths as torch_encoder.mean_pool_normalise, traced into the graph.
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask)[0]
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    return Pooled()
