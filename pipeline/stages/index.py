"""The index stage: embed the kept records (cached) -> FAISS + BM25 index -> publish + report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.errors import NotFoundError

if TYPE_CHECKING:
    from pipeline.embed import EmbedSettings


def run(cfg: Any, root: str | Path = ".") -> dict[str, Any]:
    """Build and publish data/index from the kept records; returns the stage report."""
    from pipeline.embed import EmbedSettings
    from pipeline.embed.query import ensure_query_model
    from pipeline.index.build import publish_index
    from pipeline.index.factory import IndexSettings
    from pipeline.io.pause import point
    from pipeline.io.reports import write_report
    from pipeline.service.settings import ServicePaths
    from pipeline.service.writer import writer

    root, paths = Path(root), cfg.paths
    embed = EmbedSettings.from_cfg(cfg.embed)
    settings = IndexSettings.from_cfg(cfg.index)
    published = ServicePaths.from_cfg(paths, cfg.get("tracking")).under(root)
    # The lock comes first: a second build (or a running dedup or erasure) is reported at
    # once, before minutes of embedding; and no erasure can slip between reading the kept
    # records and publishing their index.
    with writer(published, "pipeline index build"):
        point("index:locked")
        rids, texts, keyword_texts = kept_texts(root / paths.records, embed)
        vectors, embed_seconds = _embed(texts, embed, root / paths.embed_cache)
        point("index:embedded")
        # `pipeline search` encodes queries with the torch-free ONNX export: make sure it exists.
        ensure_query_model(embed, root / paths.embed_cache)
        source = _source(paths.records, root / paths.records)
        index_dir = root / paths.index_dir
        manifest = publish_index(
            index_dir, rids, vectors, keyword_texts, settings, _encoder(embed), source
        )
        report = _report(manifest, embed, embed_seconds)
        write_report(root / paths.reports, "index.json", report)
        point("index:published")
        return report


def load_kept(records_path: Path) -> tuple[np.ndarray, list[str], list[str | None], list[str]]:
    """rid, prompt, response and system prompt ('' if none) of every kept record, in rid order."""
    import pyarrow.parquet as pq

    if not records_path.exists():
        raise NotFoundError(f"{records_path}: no kept records yet; run `pipeline dedup` first")
    table = pq.read_table(records_path, columns=["rid", "prompt", "response", "metadata"])
    table = table.sort_by("rid")  # records.parquet is in input order; the index is in rid order
    return (
        table.column("rid").to_numpy().astype(np.int64),
        table.column("prompt").to_pylist(),
        table.column("response").to_pylist(),
        [_system_prompt(m) for m in table.column("metadata").to_pylist()],
    )


def _system_prompt(metadata: str | None) -> str:
    """A conversation turn's system prompt (`metadata.system`, set by the chat readers)."""
    import json

    if not metadata or '"system"' not in metadata:  # most records: no JSON parse
        return ""
    system = json.loads(metadata).get("system")
    return system if isinstance(system, str) else ""


def kept_texts(records_path: Path, embed: EmbedSettings) -> tuple[np.ndarray, list[str], list[str]]:
    """The kept records' rids, the text the encoder reads (`embed.text`) and the keyword text.

    The keyword text adds a conversation's system prompt, so keyword search finds the turns
    a system prompt governed; the vectors stay on the exchange itself (`embed.text`).
    """
    from pipeline.embed import text_of

    rids, prompts, responses, systems = load_kept(records_path)
    texts = [text_of(p, r, embed) for p, r in zip(prompts, responses, strict=True)]
    keyword = [f"{t}\n{sys}" if sys else t for t, sys in zip(texts, systems, strict=True)]
    return rids, texts, keyword


def _embed(texts: list[str], embed: EmbedSettings, cache_dir: Path) -> tuple[np.ndarray, float]:
    """The texts' vectors (through the content-hash cache) and the seconds it took."""
    from pipeline.embed import embed_texts

    start = time.perf_counter()
    vectors = embed_texts(texts, embed, cache_dir=cache_dir, progress=True)
    return vectors, time.perf_counter() - start


def _encoder(embed: EmbedSettings) -> dict[str, Any]:
    """The manifest's encoder: what a query must be encoded with to match the vectors."""
    return {
        "model": embed.model,
        "backend": embed.backend,
        "dim": embed.dim,
        "text": embed.text,
        "max_length": embed.max_length,
    }


def _source(records_file: str, records_path: Path) -> dict[str, Any]:
    """The manifest's source: the records file (as configured) and its sha256."""
    from pipeline.index.manifest import file_sha256

    return {"records_file": str(records_file), "sha256": file_sha256(records_path)}


def _report(manifest: dict[str, Any], embed: EmbedSettings, embed_seconds: float) -> dict[str, Any]:
    """reports/index.json: what was indexed, how, how well and how fast."""
    return {
        "records": manifest["records"],
        "factory": manifest["factory"],
        "recall_at_10": manifest["recall_at_10"],
        "build_seconds": manifest["build_seconds"],
        "embed_seconds": round(embed_seconds, 3),
        "dim": manifest["dim"],
        "encoder": f"{embed.model} ({embed.backend})",
        "keyword_terms": manifest["keyword"]["terms"],
        "data_hash": manifest["data_hash"],
    }
