"""The champion gate: the `champion` alias moves only to a model that has earned it.

A model is promoted when its test macro-F1 strictly beats (1) its own TF-IDF + LR baseline,
fitted on the very same split, and (2) the current champion, when the champion was scored
on the same data (`data_hash`) and the same test split (`test_split`). A champion scored on
other data or another split is not comparable: re-scoring it on the new test split is not
fair either, since it may have trained on records now in that split; the candidate, trained
on the current data, then needs only to beat its baseline (docs/evaluation.md).

A registry version is created only for a promoted model (or for every run when asked), so
the registry lists champions, not one version per `dvc repro`. Each version carries the
facts the next comparison needs as tags.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from pipeline.errors import PipelineError

CHAMPION = "champion"
SCORE_TAG = "macro_f1"
MODEL_PATH = "model"  # the name the train stage logs its model under


@dataclass(frozen=True)
class Candidate:
    """What the gate knows of the evaluated model: scores and what they were measured on."""

    run_id: str
    macro_f1: float
    baseline_macro_f1: float
    data_hash: str
    test_split: str  # digest of the test split's record ids
    model: str = ""
    servable: bool = True  # its run carries `predictor/` (what `pipeline predict` loads)

    def tags(self) -> dict[str, str]:
        """The version's tags: what a later candidate compares itself with."""
        return {
            SCORE_TAG: repr(self.macro_f1),
            "baseline_macro_f1": repr(self.baseline_macro_f1),
            "data_hash": self.data_hash,
            "test_split": self.test_split,
            "model": self.model,
        }


@dataclass(frozen=True)
class Champion:
    """The version holding the alias, as its tags describe it."""

    version: str
    macro_f1: float | None
    data_hash: str
    test_split: str
    run_id: str = ""
    reason: str = ""  # why it was promoted
    servable: bool = True  # its run carries `predictor/`; versions from before predictions may not


@dataclass(frozen=True)
class RegistryOutcome:
    name: str
    version: str | None  # the version registered by this call; None when none was
    promoted: bool  # whether `champion` now points at this version
    champion_version: str | None  # the version `champion` points at after this call
    previous_champion_version: str | None
    previous_champion_macro_f1: float | None
    reason: str
    champion_run_id: str | None = None  # the run of the version `champion` points at

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return asdict(self)


def decide(candidate: Candidate, champion: Champion | None) -> tuple[bool, str]:
    """Whether the candidate takes the alias, and why in one sentence (pure; unit-tested)."""
    new, base = candidate.macro_f1, candidate.baseline_macro_f1
    if not new > base:
        return False, f"macro-F1 {new:.4f} does not beat the TF-IDF baseline's {base:.4f}"
    beats = f"macro-F1 {new:.4f} beats the TF-IDF baseline's {base:.4f}"
    if champion is not None and champion.run_id == candidate.run_id:
        # The same trained model evaluated again: the same answer, so a re-run of evaluate
        # on unchanged inputs writes the same reports/metrics.json.
        return True, champion.reason or f"{beats}; already the champion"
    if champion is None:
        return True, f"{beats}; no champion yet"
    if champion.macro_f1 is None or (champion.data_hash, champion.test_split) != (
        candidate.data_hash,
        candidate.test_split,
    ):
        return True, (
            f"{beats}; champion v{champion.version} was scored on other data or another test "
            "split, so the model trained on the current data takes over"
        )
    if candidate.servable and not champion.servable:
        # A champion nothing can serve (registered before evaluate logged `predictor/`) blocks
        # the predictions stage and POST /predict; an equally tested model that can be served
        # takes over rather than leaving the team stuck.
        return True, (
            f"{beats}; champion v{champion.version} has no `predictor/` artifacts to serve, "
            "so the servable model takes over"
        )
    old = champion.macro_f1
    if new > old:
        return True, f"{beats} and champion v{champion.version}'s {old:.4f}"
    return False, f"{beats} but not champion v{champion.version}'s {old:.4f} on the same data"


def current_champion(client: Any, name: str, alias: str = CHAMPION) -> Champion | None:
    """The version holding `alias`, or None when there is no registered model or alias."""
    from mlflow.exceptions import MlflowException

    try:
        version = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None
    tags = version.tags or {}
    score = tags.get(SCORE_TAG)
    return Champion(
        version=str(version.version),
        macro_f1=None if score is None else float(score),
        data_hash=tags.get("data_hash", ""),
        test_split=tags.get("test_split", ""),
        run_id=str(version.run_id or ""),
        reason=tags.get("reason", ""),
        servable=_has_predictor(client, str(version.run_id or "")),
    )


def _has_predictor(client: Any, run_id: str) -> bool:
    """Whether the run logged `predictor/` (pipeline/evaluate/predictor.py)."""
    from mlflow.exceptions import MlflowException

    from pipeline.predict.spec import ARTIFACT_PATH

    if not run_id:
        return False
    try:
        return bool(client.list_artifacts(run_id, ARTIFACT_PATH))
    except (MlflowException, OSError):  # an unreadable run cannot be served either
        return False


def gate(
    candidate: Candidate,
    name: str,
    tracking_uri: str | None = None,
    alias: str = CHAMPION,
    register_every_run: bool = False,
) -> RegistryOutcome:
    """Decide, register the candidate's model when promoted (or always, if asked), move the
    alias on a promotion."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    previous = current_champion(client, name, alias)
    promote, reason = decide(candidate, previous)
    version = None
    if promote and previous is not None and previous.run_id == candidate.run_id:
        version = previous.version  # already registered and holding the alias
    elif promote or register_every_run:
        version = _register(client, candidate, name, reason)
        if promote:
            client.set_registered_model_alias(name, alias, version)
    return RegistryOutcome(
        name=name,
        version=version,
        promoted=promote,
        champion_version=version if promote else (previous.version if previous else None),
        previous_champion_version=previous.version if previous else None,
        previous_champion_macro_f1=previous.macro_f1 if previous else None,
        reason=reason,
        champion_run_id=candidate.run_id if promote else (previous.run_id if previous else None),
    )


def tag_decision(tracking_uri: str | None, candidate: Candidate, outcome: RegistryOutcome) -> None:
    """The decision as tags of the candidate's run, so the runs table shows it."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    tags = {"champion.promoted": str(outcome.promoted).lower(), "champion.reason": outcome.reason,
            "test_split": candidate.test_split}  # fmt: skip
    if outcome.version is not None:
        tags["registered_version"] = outcome.version
    for key, value in tags.items():
        client.set_tag(candidate.run_id, key, value)


def logged_model_uri(client: Any, run_id: str, path: str = MODEL_PATH) -> str:
    """`models:/<id>` of the model the run logged as `path`: MLflow 3 keeps logged models
    outside the run's artifacts, so `runs:/<id>/model` only resolves with a warning."""
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
        found = client.search_logged_models(
            experiment_ids=[run.info.experiment_id],
            filter_string=f"source_run_id = '{run_id}' AND name = '{path}'",
        )
    except MlflowException as exc:
        raise PipelineError(f"MLflow: cannot read run {run_id}: {_first_line(exc)}") from exc
    if not found:
        raise PipelineError(
            f"MLflow registry: cannot register runs:/{run_id}/{path}: the run logged no "
            f"model named {path!r} (an old or interrupted train run: re-run train)"
        )
    # Several only if the run was resumed and logged again: the newest is the one to serve.
    return f"models:/{max(found, key=lambda m: m.creation_timestamp).model_id}"


def _register(client: Any, candidate: Candidate, name: str, reason: str) -> str:
    """A new version of `name` holding the candidate's logged model; returns its number."""
    from mlflow.exceptions import MlflowException

    source = logged_model_uri(client, candidate.run_id)
    try:
        try:
            client.get_registered_model(name)
        except MlflowException:
            client.create_registered_model(name)
        # MLflow resolves a `models:/` source through the process-wide tracking URI, not this
        # client's ("Logged model ... not found" whenever the two differ): point it at ours
        # for the call.
        with _global_tracking_uri(client.tracking_uri):
            version = client.create_model_version(
                name, source, run_id=candidate.run_id,
                tags={**candidate.tags(), "reason": reason},
                model_id=source.removeprefix("models:/"),
            )  # fmt: skip
    except MlflowException as exc:
        message = f"MLflow registry: cannot register {source}: {_first_line(exc)}"
        raise PipelineError(message) from exc
    return str(version.version)


@contextlib.contextmanager
def _global_tracking_uri(uri: str) -> Iterator[None]:
    import mlflow

    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
