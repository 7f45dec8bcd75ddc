"""The MLflow model registry: register each evaluated model, move `champion` only on a win.

Each version carries its test macro-F1 as the tag `macro_f1`; the `champion` alias moves to
a new version only when that score is strictly higher than the current champion's, so a
worse (or equal) run never displaces the model a service loads by alias.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pipeline.errors import PipelineError

CHAMPION = "champion"
SCORE_TAG = "macro_f1"


@dataclass(frozen=True)
class RegistryOutcome:
    name: str
    version: str
    macro_f1: float
    promoted: bool  # whether `champion` now points at this version
    champion_version: str  # the version `champion` points at after this call
    previous_champion_version: str | None
    previous_champion_macro_f1: float | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return asdict(self)


def _current_champion(client: Any, name: str, alias: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        # No registered model yet, or no version holds the alias: there is no champion.
        return None


def decide(new_f1: float, champion_f1: float | None, has_champion: bool) -> tuple[bool, str]:
    """Whether a version scoring `new_f1` takes the alias, and why (pure; unit-tested)."""
    if not has_champion:
        return True, "no champion yet"
    if champion_f1 is None:
        return False, f"the champion has no {SCORE_TAG!r} tag; alias left in place"
    if new_f1 > champion_f1:
        return True, f"macro-F1 {new_f1:.4f} beats the champion's {champion_f1:.4f}"
    return False, f"macro-F1 {new_f1:.4f} does not beat the champion's {champion_f1:.4f}"


def register_and_promote(
    model_uri: str,
    name: str,
    macro_f1: float,
    tracking_uri: str | None = None,
    alias: str = CHAMPION,
    tags: dict[str, str] | None = None,
) -> RegistryOutcome:
    """Register `model_uri` (`runs:/<id>/model`) as a version of `name`; promote on a win."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    previous = _current_champion(client, name, alias)
    previous_f1: float | None = None
    if previous is not None and SCORE_TAG in (previous.tags or {}):
        previous_f1 = float(previous.tags[SCORE_TAG])
    version = _register(model_uri, name, {SCORE_TAG: repr(macro_f1), **(tags or {})}, tracking_uri)
    promote, reason = decide(macro_f1, previous_f1, previous is not None)
    if promote:
        client.set_registered_model_alias(name, alias, version.version)
    return RegistryOutcome(
        name=name,
        version=str(version.version),
        macro_f1=macro_f1,
        promoted=promote,
        champion_version=str(version.version) if promote else str(previous.version),
        previous_champion_version=None if previous is None else str(previous.version),
        previous_champion_macro_f1=previous_f1,
        reason=reason,
    )


def _register(model_uri: str, name: str, tags: dict[str, str], tracking_uri: str | None) -> Any:
    """A new version of `name` from `model_uri`; an MLflow refusal is a PipelineError."""
    import mlflow
    from mlflow.exceptions import MlflowException

    if tracking_uri:
        # `runs:/` URIs resolve through the tracking store; versions live in the registry.
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
    try:
        return mlflow.register_model(model_uri, name, tags=tags)
    except MlflowException as exc:
        # Typically the run logged no `model` (an old or interrupted train run).
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PipelineError(f"MLflow registry: cannot register {model_uri}: {first_line}") from exc
