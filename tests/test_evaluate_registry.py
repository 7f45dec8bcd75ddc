"""The `champion` alias against a real sqlite MLflow store: it moves on a win, never on a loss."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.evaluate.registry import decide, register_and_promote

NAME = "prompt-classifier"


def test_decide_is_strict() -> None:
    assert decide(0.5, None, has_champion=False)[0] is True
    assert decide(0.6, 0.5, has_champion=True)[0] is True
    assert decide(0.5, 0.5, has_champion=True)[0] is False  # a tie keeps the champion
    assert decide(0.4, 0.5, has_champion=True)[0] is False
    assert decide(0.9, None, has_champion=True)[0] is False  # champion without a score


def _logged_model_run(uri: str) -> str:
    """A real run holding a small logged model at `model` (pyfunc, no heavy flavour)."""
    import mlflow

    class Constant(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return [0] * len(model_input)

    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("registry-test")
    with mlflow.start_run() as run:
        mlflow.pyfunc.log_model(name="model", python_model=Constant(), pip_requirements=[])
    return run.info.run_id


@pytest.mark.slow
def test_champion_moves_only_on_better_macro_f1(tmp_path: Path, monkeypatch) -> None:
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)  # mlflow writes artifacts relative to the working directory
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)

    first = register_and_promote(f"runs:/{_logged_model_run(uri)}/model", NAME, 0.70, uri)
    assert first.promoted and first.version == "1" and first.reason == "no champion yet"
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"

    worse = register_and_promote(f"runs:/{_logged_model_run(uri)}/model", NAME, 0.65, uri)
    assert not worse.promoted and worse.version == "2"
    assert worse.champion_version == "1" and worse.previous_champion_macro_f1 == 0.70
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"

    tie = register_and_promote(f"runs:/{_logged_model_run(uri)}/model", NAME, 0.70, uri)
    assert not tie.promoted
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"

    better = register_and_promote(f"runs:/{_logged_model_run(uri)}/model", NAME, 0.80, uri)
    assert better.promoted and better.version == "4" and better.previous_champion_version == "1"
    champion = client.get_model_version_by_alias(NAME, "champion")
    assert str(champion.version) == "4"
    assert float(champion.tags["macro_f1"]) == 0.80
    # Every version is registered and scored, promoted or not.
    assert float(client.get_model_version(NAME, "2").tags["macro_f1"]) == 0.65


@pytest.mark.slow
def test_run_without_a_model_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    import mlflow

    from pipeline.errors import PipelineError

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("no-model")  # not the id an earlier test left in this process
    with mlflow.start_run() as run:
        mlflow.log_metric("x", 1.0)
    with pytest.raises(PipelineError, match=f"runs:/{run.info.run_id}/model"):
        register_and_promote(f"runs:/{run.info.run_id}/model", NAME, 0.5, uri)
