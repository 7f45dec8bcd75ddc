"""Names of the ONNX export's files (shared by the exporter and the torch-free query path)."""

from __future__ import annotations

from pathlib import Path

from pipeline.embed.models import slug

FLOAT_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
TOKENIZER_FILE = "tokenizer.json"
META_FILE = "meta.json"
# Bump when the export changes (graph, fusions, quantisation): the directory and the cached
# vectors of the ONNX backends are named by it, so stale exports are never reused.
EXPORT_VERSION = 2


def onnx_dir(model: str, cache_dir: str | Path) -> Path:
    """Where the ONNX export of `model` lives under `cache_dir` (whether or not it exists)."""
    return Path(cache_dir) / "onnx" / slug(model, f"v{EXPORT_VERSION}")


def is_exported(directory: Path) -> bool:
    """True when `directory` holds a complete export (meta.json is written last)."""
    return (directory / META_FILE).is_file()
