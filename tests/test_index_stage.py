"""The index stage end to end with the real encoder, then search with the torch-free path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers.search import records_table
from helpers.store import write_records_store

from pipeline.config import compose, to_yaml
from pipeline.errors import NotFoundError
from pipeline.index.verify import verify_index
from pipeline.search.api import open_from_config
from pipeline.stages.index import run
from pipeline.store.scope import Scope

PROMPTS = [
    "How can I get a refund for a parcel that arrived damaged?",
    "What is the capital city of France?",
    "Write a haiku about autumn leaves.",
    "My laptop will not turn on after the update.",
    "Translate 'good morning' into Spanish.",
    "Suggest a recipe for sourdough bread.",
]


def _project(root: Path) -> None:
    table = records_table(len(PROMPTS), prompts=PROMPTS)
    (root / "data" / "dedup").mkdir(parents=True)
    pq.write_table(table, root / "data" / "dedup" / "records.parquet")
    write_records_store(root / "data" / "dedup" / "store.duckdb", table)
    (root / "params.yaml").write_text(to_yaml(compose()), encoding="utf-8")


def test_missing_records_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"records\.parquet"):
        run(compose(), tmp_path)


@pytest.mark.slow
def test_stage_then_search_with_the_real_encoder(tmp_path: Path) -> None:
    _project(tmp_path)
    report = run(compose(), tmp_path)
    assert report["records"] == len(PROMPTS)
    assert report["factory"] == "Flat" and report["recall_at_10"] == 1.0
    metric_file = (tmp_path / "reports" / "index.json").read_bytes()
    assert json.loads(metric_file)["records"] == 6
    run(compose(), tmp_path)  # same inputs: the DVC metric file is byte-identical
    assert (tmp_path / "reports" / "index.json").read_bytes() == metric_file
    manifest = json.loads((tmp_path / "data" / "index" / "manifest.json").read_text())
    assert manifest["encoder"]["model"] == "all-MiniLM-L6-v2" and manifest["dim"] == 384
    assert verify_index(tmp_path / "data" / "index", tmp_path / "data" / "dedup" / "store.duckdb")[
        "ok"
    ]

    searcher = open_from_config(tmp_path)
    top = searcher.search(
        "parcel broken in delivery, money back?", k=3, mode="vector", scope=Scope.all()
    )[0]
    assert top.prompt.startswith("How can I get a refund")
    hybrid = searcher.search("sourdough", k=2, mode="hybrid", scope=Scope.all())
    assert hybrid[0].prompt == "Suggest a recipe for sourdough bread."
    assert hybrid[0].scores["vector"] > 0.3 and hybrid[0].scores["keyword"] > 0

    # A re-run embeds nothing new: every vector comes from the cache.
    again = run(compose(), tmp_path)
    assert again["data_hash"] == report["data_hash"]

    # `pipeline search` in a fresh process must not import torch.
    code = (
        "import sys; from pipeline.cli import main; "
        f"rc = main(['search', 'capital of France', '-k', '1', '--root', {str(tmp_path)!r}]); "
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', rc)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parent.parent,
    )
    assert "What is the capital city of France?" in out.stdout
    assert out.stdout.strip().endswith("NO-TORCH 0")
