"""The evaluate stage end to end on tiny data: real train stage, real MLflow sqlite store."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from pipeline.errors import NotFoundError, UserInputError

pytestmark = pytest.mark.slow

VOCAB = {
    "refund": "refund parcel money back order",
    "translate": "translate french sentence language words",
    "code": "python function bug compile error",
}
OVERRIDES = [
    "model=textcnn",
    "trainer.max_epochs=2",
    "trainer.enable_progress_bar=false",
    "model.net.embed_dim=16",
    "model.net.channels=8",
    "split.val_fraction=0.2",
    "split.test_fraction=0.25",
]


def _write_records(root: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    import xxhash

    from pipeline.record import RECORD_SCHEMA

    rows = []
    for label, words in VOCAB.items():
        w = words.split()
        for i in range(40):
            rows.append(
                {
                    "rid": xxhash.xxh64_intdigest(f"{label}:{i}".encode()) & (2**63 - 1),
                    "id": f"{label}:{i}",
                    "prompt": f"please {w[i % 5]} {w[(i * 3) % 5]} now {i}",
                    "response": "ok",
                    "label": label,
                    "tags": [],
                    "origin": "real",
                    "metadata": "{}",
                    "file": "tiny.jsonl",
                    "line": i + 1,
                }
            )
    (root / "data" / "dedup").mkdir(parents=True)
    pq.write_table(
        pa.Table.from_pylist(rows, schema=RECORD_SCHEMA), root / "data/dedup/records.parquet"
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """A repository root with records, a trained tiny TextCNN in models/ and its MLflow run."""
    from pipeline.config import compose
    from pipeline.stages import train

    root = tmp_path_factory.mktemp("repo")
    _write_records(root)
    cfg = compose(OVERRIDES)
    train.run(cfg, root)
    return root, cfg


def _ours(tags: dict[str, str]) -> dict[str, str]:
    """The tags the stages set (MLflow keeps its own `mlflow.*` bookkeeping)."""
    return {k: v for k, v in tags.items() if not k.startswith("mlflow.") or "note" in k}


def test_evaluate_writes_reports_logs_run_and_registers(trained) -> None:
    from mlflow import MlflowClient

    from pipeline.stages import evaluate

    root, cfg = trained
    result = evaluate.run(cfg, root)
    meta = json.loads((root / "models/meta.json").read_text())

    report = json.loads((root / "reports/metrics.json").read_text())
    for key in ("accuracy", "macro_f1", "weighted_f1", "ece", "baseline_macro_f1", "onnx"):
        assert key in report
    assert "timing" not in report  # wall-clock figures are beside it, not DVC metrics
    timing = json.loads((root / "reports/run/metrics.json").read_text())["timing"]
    assert timing["inference_samples_per_s"] == pytest.approx(
        report["n_test"] / timing["inference_seconds"]
    )
    assert report["onnx"]["max_abs_diff"] < 1e-4
    assert 0.0 <= report["macro_f1"] <= 1.0
    assert report["baseline_macro_f1"] > 0.9  # the words separate the labels exactly

    with (root / "reports/eval/confusion.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == report["n_test"]
    assert {r["actual"] for r in rows} <= set(VOCAB)
    with (root / "reports/eval/calibration.csv").open() as fh:
        bins = list(csv.DictReader(fh))
    assert sum(int(b["count"]) for b in bins) == report["n_test"]
    for name in ("confusion.png", "calibration.png", "model.onnx", "per_class.json"):
        assert (root / "reports/eval" / name).stat().st_size > 0

    uri = f"sqlite:///{(root / 'mlflow.db').resolve()}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    run = client.get_run(meta["mlflow_run_id"])
    assert run.data.tags["stage"] == "train"  # evaluate adds to the run, overwrites no tag
    assert run.data.tags["evaluated"] == "true"
    assert run.data.metrics["test.macro_f1"] == pytest.approx(report["macro_f1"])
    assert run.data.metrics["test.ece"] == pytest.approx(report["ece"])
    # Constants are params, durations are time.*, quality metrics test.*: nothing in between.
    assert run.data.params["eval.n_test"] == str(report["n_test"])
    assert run.data.params["eval.onnx_opset"] == str(report["onnx"]["opset"])
    assert run.data.metrics["time.inference_seconds"] == timing["inference_seconds"]
    assert not {k for k in run.data.metrics if "seconds" in k and not k.startswith("time.")}
    assert "test.n_test" not in run.data.metrics and "test.onnx.opset" not in run.data.metrics
    # The run's val_* summary is the best epoch's; the curves are epoch.*.
    assert run.data.metrics["val_macro_f1"] == pytest.approx(meta["best_val_macro_f1"])
    curve = client.get_metric_history(run.info.run_id, "epoch.val_macro_f1")
    assert len(curve) == 2 and max(m.value for m in curve) == run.data.metrics["val_macro_f1"]
    best = max(range(2), key=lambda i: curve[i].value)  # the first of equals, as Lightning
    assert run.data.metrics["best_epoch"] == best
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "eval")}
    assert "eval/most_confident_mistakes.json" in artifacts
    root_files = {a.path for a in client.list_artifacts(run.info.run_id) if not a.is_dir}
    assert "confusion.png" in root_files  # at the root: the compare page shows root files

    # The gate's decision is in the metric file and on the run, and matches the registry.
    beats = report["macro_f1"] > report["baseline_macro_f1"]
    assert report["champion"]["promoted"] is beats is result["registry"]["promoted"]
    assert run.data.tags["champion.promoted"] == str(beats).lower()
    assert run.data.tags["champion.reason"] == report["champion"]["reason"]
    versions = client.search_model_versions("name = 'prompt-classifier'")
    assert len(versions) == int(beats)  # a version only for a promoted model

    # Same inputs, byte-identical metric file, the same decision, no new version.
    first = (root / "reports/metrics.json").read_bytes()
    again = evaluate.run(cfg, root)
    assert (root / "reports/metrics.json").read_bytes() == first
    assert again["registry"]["version"] == result["registry"]["version"]
    assert len(client.search_model_versions("name = 'prompt-classifier'")) == int(beats)
    rerun = client.get_run(meta["mlflow_run_id"])
    assert _ours(rerun.data.tags) == _ours(run.data.tags)
    assert rerun.info.end_time == run.info.end_time  # the run's span is the train stage's


def test_mistakes_of_erased_users_are_never_written(trained) -> None:
    """The mistakes quote records' text: those of a user on the erasure list are dropped
    before reports/eval/mistakes.json and the MLflow table are written."""
    import hashlib

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from pipeline.evaluate.mistakes import ARTIFACT
    from pipeline.stages import evaluate

    root, cfg = trained
    records = root / "data/dedup/records.parquet"
    original = records.read_bytes()
    evaluate.run(cfg, root)
    before = json.loads((root / "reports/eval/mistakes.json").read_text())
    assert before  # the two-epoch model makes mistakes
    erased = before[0]["id"].split(":")[0]  # its label; each label is one user here
    table = pq.read_table(records)
    users = pc.binary_join_element_wise(pa.scalar("user-"), table["label"], "")
    pq.write_table(table.set_column(table.schema.get_field_index("user_id"), "user_id", users),
                   records)  # fmt: skip
    erasures = root / "data" / "erasures.txt"
    erasures.write_text(hashlib.sha256(f"user-{erased}".encode()).hexdigest() + "\n")
    [artifact] = (root / "mlruns").rglob(Path(ARTIFACT).name)
    logged = len(json.loads(artifact.read_text())["data"])
    try:
        evaluate.run(cfg, root)
    finally:
        records.write_bytes(original)
        erasures.unlink()
    after = json.loads((root / "reports/eval/mistakes.json").read_text())
    assert after and not [m for m in after if m["id"].startswith(f"{erased}:")]
    table = json.loads(artifact.read_text())  # MLflow appends: this run's rows are last
    new = [row[table["columns"].index("id")] for row in table["data"][logged:]]
    assert new == [m["id"] for m in after]


def test_missing_model_is_a_clear_error(trained, tmp_path: Path) -> None:
    from pipeline.stages import evaluate

    root, cfg = trained
    shutil.copytree(root / "data", tmp_path / "data")
    with pytest.raises(NotFoundError, match=r"models/meta\.json"):
        evaluate.run(cfg, tmp_path)


def test_unknown_evaluate_key_is_rejected(trained) -> None:
    from omegaconf import OmegaConf

    from pipeline.stages import evaluate

    root, cfg = trained
    bad = OmegaConf.create(OmegaConf.to_container(cfg))  # a plain copy, open to new keys
    bad.evaluate = {"n_bins": 3}
    with pytest.raises(UserInputError, match=r"evaluate\.n_bins"):
        evaluate.run(bad, root)


def test_the_cli_takes_overrides(trained, capsys: pytest.CaptureFixture[str]) -> None:
    """`pipeline evaluate -S ...`, like every command (it took none before)."""
    from pipeline.cli import main
    from pipeline.config import to_yaml

    root, cfg = trained
    (root / "params.yaml").write_text(to_yaml(cfg), encoding="utf-8")
    assert main(["evaluate", "--root", str(root), "-S", "evaluate.onnx=false", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["onnx"] == {} and not (root / "reports/eval/model.onnx").exists()
    assert main(["evaluate", "--root", str(root), "--set", "evaluate.n_bins=3"]) == 2
    assert "nearest: evaluate.ece_bins" in capsys.readouterr().err


def test_linear_probe_is_evaluated_on_cached_embeddings(tmp_path: Path) -> None:
    """The default model: embedding inputs, a fixed-width ONNX head, the real encoder."""
    from pipeline.config import compose
    from pipeline.stages import evaluate, train

    _write_records(tmp_path)
    cfg = compose(
        ["model=linear_probe", "trainer.max_epochs=3", "trainer.enable_progress_bar=false"]
        + [o for o in OVERRIDES if o.startswith("split.")]
    )
    train.run(cfg, tmp_path)
    result = evaluate.run(cfg, tmp_path)
    assert result["model"] == "linear_probe"
    assert result["onnx"]["max_abs_diff"] < 1e-4
    assert result["registry"]["promoted"] is (result["macro_f1"] > result["baseline_macro_f1"])
    assert (tmp_path / "reports/eval/model.onnx").stat().st_size > 0


def test_hybrid_default_trains_and_is_evaluated_with_its_onnx_graph(tmp_path: Path) -> None:
    """The default model through the real train and evaluate stages: embedding + n-grams."""
    from pipeline.config import compose
    from pipeline.stages import evaluate, train
    from pipeline.train.inference import load_classifier

    _write_records(tmp_path)
    cfg = compose(
        ["trainer.max_epochs=3", "trainer.enable_progress_bar=false", "model.net.n_features=1024"]
        + [o for o in OVERRIDES if o.startswith("split.")]
    )
    assert cfg.model.name == "hybrid"
    train.run(cfg, tmp_path)
    classifier = load_classifier(tmp_path / "models")
    assert float(classifier.module.idf.max()) > 1.0  # fitted on the train split, then saved
    (features,) = classifier.export_inputs(["please refund parcel now"])
    assert tuple(features.shape) == (1, 384 + 1024)
    result = evaluate.run(cfg, tmp_path)
    assert result["model"] == "hybrid" and result["macro_f1"] > 0.5
    assert result["onnx"]["max_abs_diff"] < 1e-4
    assert (tmp_path / "reports/eval/model.onnx").stat().st_size > 0
