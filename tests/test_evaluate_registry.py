"""The champion gate against a real sqlite MLflow store: the alias moves only to a model that
beats its baseline and a comparable champion; no version is registered for a loser."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.evaluate.registry import Candidate, Champion, decide, gate

NAME = "prompt-classifier"


def _candidate(f1: float, baseline: float = 0.5, data: str = "d1", split: str = "s1") -> Candidate:
    return Candidate("run", f1, baseline, data, split, "linear_probe")


def test_decide_needs_the_baseline_beaten_first() -> None:
    promoted, reason = decide(_candidate(0.930, baseline=0.981), None)
    assert not promoted and "does not beat the TF-IDF baseline's 0.9810" in reason
    assert decide(_candidate(0.5, baseline=0.5), None)[0] is False  # a tie is not a win
    assert decide(_candidate(0.6, baseline=0.5), None) == (
        True,
        "macro-F1 0.6000 beats the TF-IDF baseline's 0.5000; no champion yet",
    )


def test_decide_against_a_comparable_champion_is_strict() -> None:
    champion = Champion("3", 0.7, "d1", "s1")
    assert decide(_candidate(0.8), champion)[0] is True
    assert decide(_candidate(0.7), champion)[0] is False  # a tie keeps the champion
    promoted, reason = decide(_candidate(0.6), champion)
    assert not promoted and "not champion v3's 0.7000 on the same data" in reason


def test_decide_with_an_incomparable_champion_needs_only_the_baseline() -> None:
    for champion in (
        Champion("3", 0.99, "other-data", "s1"),
        Champion("3", 0.99, "d1", "other-split"),
        Champion("3", None, "d1", "s1"),  # a version from before the gate: no score tag
    ):
        promoted, reason = decide(_candidate(0.6), champion)
        assert promoted and "other data or another test split" in reason
        assert decide(_candidate(0.4), champion)[0] is False


def test_decide_replaces_a_champion_that_cannot_be_served() -> None:
    legacy = Champion("3", 0.7, "d1", "s1", servable=False)
    promoted, reason = decide(_candidate(0.7), legacy)  # a tie, but v3 cannot be served
    assert promoted and "champion v3 has no `predictor/` artifacts to serve" in reason
    assert decide(_candidate(0.6), legacy)[0] is True
    assert decide(_candidate(0.4), legacy)[0] is False  # still has to beat its baseline
    unservable = Candidate("run", 0.7, 0.5, "d1", "s1", "m", servable=False)
    assert decide(unservable, legacy)[0] is False  # no better off: the tie keeps v3


def _logged_model_run(uri: str, predictor: bool = True) -> str:
    """A real run holding a small logged model named `model` (pyfunc, no heavy flavour) and,
    as evaluate logs it, a `predictor/` artifact (what `pipeline predict` serves)."""
    import mlflow

    class Constant(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input: list[str], params=None) -> list[int]:
            return [0] * len(model_input)

    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("registry-test")
    with mlflow.start_run() as run:
        mlflow.pyfunc.log_model(name="model", python_model=Constant(), pip_requirements=[])
        if predictor:
            mlflow.log_text("{}", "predictor/predictor.json")
    return run.info.run_id


def _champion(client, name: str = NAME) -> str:
    return str(client.get_model_version_by_alias(name, "champion").version)


def _versions(client) -> int:
    return len(client.search_model_versions(f"name = '{NAME}'"))


@pytest.mark.slow
def test_gate_promotes_only_a_model_that_has_earned_it(
    tmp_path: Path, monkeypatch, capfd: pytest.CaptureFixture[str]
) -> None:
    import mlflow
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)  # mlflow writes artifacts relative to the working directory
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)

    def run(f1: float, baseline: float = 0.5, data: str = "d1", predictor: bool = True, **kw):
        candidate = Candidate(_logged_model_run(uri, predictor), f1, baseline, data, "s1", "m",
                              servable=predictor)  # fmt: skip
        # The process-wide URI names another store (as in a `dvc exp run`): the gate must
        # use only the URI it is given.
        mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'elsewhere.db'}")
        return gate(candidate, NAME, uri, **kw)

    # Loses to its baseline: nothing registered, no champion, and the reason says so.
    lost = run(0.60, baseline=0.70)
    assert not lost.promoted and lost.version is None and lost.champion_version is None
    assert "does not beat the TF-IDF baseline" in lost.reason
    assert client.search_registered_models(f"name = '{NAME}'") == []

    capfd.readouterr()
    first = run(0.70)
    assert first.promoted and first.version == "1" and _champion(client) == "1"
    # mlflow's loggers do not propagate: its warnings are read from the stderr they write to.
    assert "registering model based on" not in capfd.readouterr().err
    version = client.get_model_version(NAME, "1")
    assert version.tags["data_hash"] == "d1" and float(version.tags["macro_f1"]) == 0.70
    assert version.source.startswith("models:/m-")  # the logged model, not runs:/.../model
    mlflow.set_tracking_uri(uri)
    assert mlflow.pyfunc.load_model(f"models:/{NAME}/1").predict(["a", "b"]) == [0, 0]

    # Worse than the champion on the same data, or a tie: no new version, alias unchanged.
    for f1 in (0.65, 0.70):
        kept = run(f1)
        assert not kept.promoted and kept.version is None and kept.champion_version == "1"
        assert kept.previous_champion_macro_f1 == 0.70
    # Loses to its baseline while a champion exists: the alias stays.
    assert not run(0.90, baseline=0.95).promoted
    assert _champion(client) == "1" and _versions(client) == 1

    better = run(0.80)
    assert better.promoted and better.version == "2" and better.previous_champion_version == "1"
    assert _champion(client) == "2"
    # The champion's own run evaluated again: the same decision and reason, no new version.
    again = gate(Candidate(client.get_model_version(NAME, "2").run_id, 0.80, 0.5, "d1", "s1"),
                 NAME, uri)  # fmt: skip
    assert (again.promoted, again.reason, again.version) == (True, better.reason, "2")
    assert _versions(client) == 2

    # Other data: the old score is not comparable; beating the baseline is enough.
    moved = run(0.60, data="d2")
    assert moved.promoted and moved.version == "3" and _champion(client) == "3"

    # Asked to register every run: a version without the alias.
    kept = run(0.10, data="d2", register_every_run=True)
    assert not kept.promoted and kept.version == "4" and _champion(client) == "3"

    # A champion from before evaluate logged `predictor/` cannot be served: a servable model
    # as good takes over (a tie, which would otherwise keep the champion).
    legacy = run(0.90, data="d3", predictor=False)
    assert legacy.promoted and _champion(client) == "5"
    served = run(0.90, data="d3")
    assert served.promoted and "no `predictor/` artifacts to serve" in served.reason
    assert _champion(client) == "6"
    assert not run(0.90, data="d3").promoted  # now a servable champion: a tie keeps it


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
        gate(Candidate(run.info.run_id, 0.9, 0.5, "d", "s"), NAME, uri)
