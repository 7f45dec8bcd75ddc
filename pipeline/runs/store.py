"""The tracking store of a project: its client, its model runs and the registry's champion."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import NotFoundError, UserInputError
from pipeline.tracking import TrackingSettings

MODEL_STAGES = ("train", "evaluate")  # `evaluate`: model runs logged before issue 11
REGISTERED_MODEL = "prompt-classifier"  # evaluate.registered_model's default
CHAMPION = "champion"


@dataclass
class Store:
    """An open tracking store and the names the project's config gives it."""

    client: Any
    uri: str
    experiment: str
    registered_model: str

    @classmethod
    def open(cls, cfg: Mapping[str, Any] | None, root: Path) -> Store:
        """The store of `cfg.tracking` under `root`; a local store that does not exist is a
        NotFoundError (opening it would create an empty one)."""
        from mlflow import MlflowClient

        tracking = TrackingSettings.from_cfg(cfg["tracking"]) if cfg else TrackingSettings()
        evaluate = (cfg or {}).get("evaluate") or {}
        uri = tracking.resolved_uri(root)
        if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
            raise NotFoundError(
                f"no tracking store at {uri.removeprefix('sqlite:///')}: "
                "run the pipeline first (`make run`)"
            )
        name = str(evaluate.get("registered_model", REGISTERED_MODEL))
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        return cls(client, uri, tracking.experiment, name)

    def model_runs(self) -> list[Any]:
        """Every model run of the experiment (train runs, evaluated or not), newest first."""
        experiment = self.client.get_experiment_by_name(self.experiment)
        if experiment is None:
            return []
        runs: list[Any] = []
        token = None
        while True:
            page = self.client.search_runs(
                [experiment.experiment_id], max_results=1000, page_token=token,
                order_by=["attributes.start_time DESC"],
            )  # fmt: skip
            runs.extend(r for r in page if r.data.tags.get("stage") in MODEL_STAGES)
            token = page.token
            if not token:
                return runs

    def champion_run(self) -> str | None:
        """The run id of the version the registry's `champion` alias points at, if any."""
        from mlflow.exceptions import MlflowException

        try:
            version = self.client.get_model_version_by_alias(self.registered_model, CHAMPION)
        except MlflowException:
            return None  # no registered model, or no version holds the alias
        return str(version.run_id) if version.run_id else None

    def run(self, ref: str) -> Any:
        """The run whose id is `ref` or starts with it (as the table prints 8 characters)."""
        from mlflow.exceptions import MlflowException

        if len(ref) == 32:
            try:
                return self.client.get_run(ref)
            except MlflowException:
                pass
        found = [r for r in self.model_runs() if r.info.run_id.startswith(ref)] if ref else []
        if not found:
            raise NotFoundError(f"run {ref!r} is not a model run in {self.uri}")
        if len(found) > 1:
            raise UserInputError(
                f"run {ref!r} is ambiguous: {', '.join(r.info.run_id[:12] for r in found[:5])}"
            )
        return found[0]

    def artifact_json(self, run_id: str, path: str) -> Any | None:
        """A JSON artifact of the run, or None when the run has no such file."""
        import json
        import os
        import tempfile

        from mlflow.exceptions import MlflowException

        parent = path.rpartition("/")[0]
        if path not in {a.path for a in self.client.list_artifacts(run_id, parent or None)}:
            return None
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # not on stderr
        with tempfile.TemporaryDirectory() as tmp:
            try:
                local = self.client.download_artifacts(run_id, path, tmp)
            except (MlflowException, OSError):
                return None
            return json.loads(Path(local).read_text(encoding="utf-8"))
