"""Which registered version a ref names, and its `predictor/` files in a local cache.

A ref is an alias (`champion`) or a version number. The alias is read live on every load,
so a moved alias is seen at once; the files of a version never change, so they are fetched
once and kept under `<cache>/<name>/<version>/`, checked against the version's run id.

`import mlflow` alone takes ~3 s here, more than a cold `pipeline predict` may. With a local
sqlite store (the default) the ref is read from the registry's own tables in read-only SQL,
and files already cached need nothing else; anything else (a tracking server, a schema
this code does not know, a cache miss) goes through MlflowClient with the configured URI.
"""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pipeline.errors import NotFoundError
from pipeline.predict.spec import ARTIFACT_PATH, ONNX_FILE, SPEC_FILE

_SQLITE = "sqlite:///"
SOURCE_FILE = "source.json"  # in a cached version's directory: what it was fetched from

_VERSION_SQL = (
    "SELECT version, run_id FROM model_versions "
    "WHERE name = ? AND version = ? AND current_stage != 'Deleted_Internal'"
)
_ALIAS_SQL = (
    "SELECT v.version, v.run_id FROM registered_model_aliases a JOIN model_versions v "
    "ON v.name = a.name AND v.version = a.version WHERE a.name = ? AND a.alias = ?"
)


@dataclass(frozen=True)
class ModelRef:
    """One registered version: the model's name, its version number and its train run."""

    name: str
    version: str
    run_id: str


def resolve(tracking_uri: str, name: str, ref: str) -> ModelRef:
    """The version `ref` (an alias or a number) names; NotFoundError when there is none."""
    found = _resolve_sqlite(tracking_uri, name, ref)
    if found is None:
        found = _resolve_client(tracking_uri, name, ref)
    if not found:
        what = f"version {ref}" if ref.isdigit() else f"alias {ref!r}"
        raise NotFoundError(
            f"MLflow registry {tracking_uri}: model {name!r} has no {what}; run `dvc repro` "
            "(evaluate registers and promotes the champion) or give --model <version>"
        )
    return found


def _resolve_sqlite(tracking_uri: str, name: str, ref: str) -> ModelRef | bool | None:
    """From a local sqlite store's tables: a ModelRef, False if absent, None if unreadable."""
    if not tracking_uri.startswith(_SQLITE):
        return None
    path = Path(tracking_uri[len(_SQLITE) :])
    if not path.is_file():
        return None  # MlflowClient says what is wrong
    sql = _VERSION_SQL if ref.isdigit() else _ALIAS_SQL
    try:
        db = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=5)
        with closing(db):
            row = db.execute(sql, (name, int(ref) if ref.isdigit() else ref)).fetchone()
    except sqlite3.Error:
        return None  # another schema (or a locked file): MLflow's own client reads it
    return ModelRef(name, str(row[0]), str(row[1] or "")) if row else False


def _resolve_client(tracking_uri: str, name: str, ref: str) -> ModelRef | bool:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        if ref.isdigit():
            version = client.get_model_version(name, ref)
        else:
            version = client.get_model_version_by_alias(name, ref)
    except MlflowException:
        return False
    return ModelRef(name, str(version.version), str(version.run_id or ""))


def fetch(tracking_uri: str, ref: ModelRef, cache_dir: Path) -> Path:
    """The directory holding the version's model.onnx and predictor.json, fetched if needed."""
    directory = cache_dir / _safe(ref.name) / ref.version
    if _cached(directory, ref):
        return directory
    from pipeline.io.atomic import atomic_dir

    directory.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(directory) as tmp:
        _download(tracking_uri, ref, tmp)
        source = {"name": ref.name, "version": ref.version, "run_id": ref.run_id}
        (tmp / SOURCE_FILE).write_text(json.dumps(source, sort_keys=True) + "\n", "utf-8")
    return directory


def _cached(directory: Path, ref: ModelRef) -> bool:
    try:
        source = json.loads((directory / SOURCE_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    # A version number is never reused while the model exists; a model deleted and made
    # again starts over at 1, so the run id must match too.
    return source.get("run_id") == ref.run_id and (directory / ONNX_FILE).is_file()


def _download(tracking_uri: str, ref: ModelRef, into: Path) -> None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    # No progress bar on a CLI's stderr for two small files.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        got = Path(client.download_artifacts(ref.run_id, ARTIFACT_PATH, str(into)))
    except (MlflowException, OSError) as exc:
        raise NotFoundError(
            f"{ref.name} v{ref.version} (run {ref.run_id}): no `{ARTIFACT_PATH}/` artifacts "
            f"({_first_line(exc)}); run `dvc repro -f evaluate` (evaluate.onnx=true): a model "
            "that can be served then takes the alias"
        ) from None
    for name in (ONNX_FILE, SPEC_FILE):
        if not (got / name).is_file():
            raise NotFoundError(
                f"{ref.name} v{ref.version} (run {ref.run_id}): `{ARTIFACT_PATH}/{name}` is "
                "missing; run `dvc repro -f evaluate` (evaluate.onnx=true): a model that can be "
                "served then takes the alias"
            )
        (got / name).replace(into / name)
    if got != into:
        got.rmdir()


def _safe(name: str) -> str:
    from pipeline.embed.models import slug

    return slug(name)


def _first_line(exc: Any) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


__all__ = ["ModelRef", "fetch", "resolve"]
