"""The index stage: embed the kept records (cached) -> FAISS + BM25 index -> publish + report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import NotFoundError


def load_kept(records_path: Path) -> tuple[np.ndarray, list[str], list[str | None]]:
    """rid, prompt and response of every kept record, from records.parquet, in rid order."""
    import pyarrow.parquet as pq

    if not records_path.exists():
        raise NotFoundError(f"{records_path}: no kept records yet; run `pipeline dedup` first")
    table = pq.read_table(records_path, columns=["rid", "prompt", "response"])
    table = table.sort_by("rid")  # records.parquet is in input order; the index is in rid order
    return (
        table.column("rid").to_numpy().astype(np.int64),
        table.column("prompt").to_pylist(),
        table.column("response").to_pylist(),
    )


def run(cfg: Any, root: str | Path = ".") -> dict[str, Any]:
    """Build and publish data/index from the kept records; returns the stage report."""
    from pipeline.embed import EmbedSettings
    from pipeline.index.factory import IndexSettings
    from pipeline.io.pause import point
    from pipeline.service.settings import ServicePaths
    from pipeline.service.writer import writer

    root = Path(root)
    paths = cfg.paths
    embed = EmbedSettings.from_cfg(cfg.embed)
    settings = IndexSettings.from_cfg(cfg.index)
    records_path = root / paths.records
    published = ServicePaths.from_cfg(paths, cfg.get("tracking")).under(root)
    # The lock comes first: a second build (or a running dedup or erasure) is reported at
    # once, before minutes of embedding; and no erasure can slip between reading the kept
    # records and publishing their index.
    with writer(published, "pipeline index build"):
        point("index:locked")
        return _build(cfg, root, embed, settings, records_path)


def _build(cfg: Any, root: Path, embed: Any, settings: Any, records_path: Path) -> dict[str, Any]:
    from pipeline.embed import embed_texts, text_of
    from pipeline.embed.query import ensure_query_model
    from pipeline.index.build import publish_index
    from pipeline.index.manifest import file_sha256
    from pipeline.io.atomic import write_json
    from pipeline.io.pause import point

    paths = cfg.paths
    rids, prompts, responses = load_kept(records_path)
    texts = [text_of(p, r, embed) for p, r in zip(prompts, responses, strict=True)]
    start = time.perf_counter()
    vectors = embed_texts(texts, embed, cache_dir=root / paths.embed_cache, progress=True)
    embed_seconds = time.perf_counter() - start
    point("index:embedded")
    # `pipeline search` encodes queries with the torch-free ONNX export: make sure it exists.
    ensure_query_model(embed, root / paths.embed_cache)
    encoder = {
        "model": embed.model,
        "backend": embed.backend,
        "dim": embed.dim,
        "text": embed.text,
        "max_length": embed.max_length,
    }
    source = {"records_file": str(paths.records), "sha256": file_sha256(records_path)}
    manifest = publish_index(
        root / paths.index_dir, rids, vectors, texts, settings, encoder, source
    )
    report = {
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
    write_json(root / paths.reports / "index.json", report)
    point("index:published")
    return report
