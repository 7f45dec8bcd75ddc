"""Lineage shared by every stage's MLflow run: the git commit and the pipeline-run id."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def git_commit(root: Path) -> str:
    """HEAD's commit (with -dirty when tracked files changed), or 'unknown' outside git."""
    try:
        run = {"cwd": root, "capture_output": True, "text": True, "check": True}
        head = subprocess.run(["git", "rev-parse", "HEAD"], **run).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "-uno"], **run).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}-dirty" if dirty else head


def pipeline_run(commit: str, data_hash: str, params: Mapping[str, Any]) -> str:
    """One id per pipeline execution: $PIPELINE_RUN if set, else commit + data + params.

    `make run` sets PIPELINE_RUN once for the whole `dvc repro`, so the dedup, train and
    evaluate runs share the tag `pipeline_run` and are found together in MLflow.
    """
    explicit = os.environ.get("PIPELINE_RUN")
    if explicit:
        return explicit
    params_digest = hashlib.sha256(
        json.dumps(params, sort_keys=True, default=str).encode()
    ).hexdigest()
    key = f"{commit}:{data_hash}:{params_digest}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]
