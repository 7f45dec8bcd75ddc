"""Shared fixtures. Real components only: DuckDB files, MLflow stores and FAISS indexes live
in `tmp_path`; the public datasets in ../shared/data are used when present and skipped
cleanly when not."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

# Offline and quiet, whatever the caller's environment says.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _shared_file(relative: str) -> Path:
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"{path} is absent (the public datasets live in ../shared/data)")
    return path


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def t0_prompts_path() -> Path:
    """../shared/data/t0-prompts/t0-prompts.jsonl.gz (55,185 labelled prompts)."""
    return _shared_file("t0-prompts/t0-prompts.jsonl.gz")


@pytest.fixture(scope="session")
def hh_rlhf_path() -> Path:
    """../shared/data/hh-rlhf/harmless-base-test.jsonl.gz (2,312 preference pairs)."""
    return _shared_file("hh-rlhf/harmless-base-test.jsonl.gz")
