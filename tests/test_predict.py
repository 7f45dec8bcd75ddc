"""The predictor core: a real train + evaluate into a real MLflow sqlite store, then
`Predictor.load` through the registry, ONNX Runtime only (pipeline/predict/)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline.errors import NotFoundError
from tests.test_evaluate_stage import _write_records

TINY = [
    "evaluate.register_every_run=true",  # a version even when the tiny model loses the gate
    "trainer.max_epochs=2",
    "trainer.enable_progress_bar=false",
    "split.val_fraction=0.2",
    "split.test_fraction=0.25",
]
TEXTCNN = ["model=textcnn", "model.net.embed_dim=16", "model.net.channels=8"]
HYBRID = ["model.net.n_features=1024", "model.net.lexical_init=zeros"]
TEXTS = ["please refund my parcel now", "translate this french sentence", "python bug " * 200]


def _trained(root: Path, overrides: list[str]) -> Any:
    from pipeline.config import compose, to_yaml
    from pipeline.stages import evaluate, train

    _write_records(root)
    cfg = compose(TINY + overrides)
    (root / "params.yaml").write_text(to_yaml(cfg), encoding="utf-8")  # for the CLI
    train.run(cfg, root)
    evaluate.run(cfg, root)
    return cfg


def _cli(root: Path, *args: str | bytes) -> subprocess.CompletedProcess[str]:
    """The real `pipeline` command in a subprocess, against the repository at `root`."""
    argv = [sys.executable, "-m", "pipeline", "predict", "--root", str(root), *args]
    return subprocess.run(argv, capture_output=True, text=True, errors="replace")


HEAVY = ("torch", "lightning", "pytorch_lightning", "mlflow", "sklearn", "transformers",
         "sentence_transformers", "omegaconf", "hydra", "duckdb", "pandas")  # fmt: skip


def _cli_imports(root: Path, *args: str) -> tuple[list[dict[str, Any]], list[str]]:
    """`pipeline predict --json ARGS` run by the CLI's own `main` in a fresh process: its
    rows, and which of HEAVY that process had imported when it finished."""
    argv = ["predict", "--root", str(root), "--json", *args]
    script = (
        "import json, sys\n"
        "from pipeline.cli import main\n"
        f"code = main({argv!r})\n"
        f"heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))\n"
        "print(json.dumps(heavy), file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), json.loads(done.stderr.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def textcnn(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    root = tmp_path_factory.mktemp("predict")
    return root, _trained(root, TEXTCNN)


def _classifier_probs(root: Path, texts: list[str]) -> np.ndarray:
    from pipeline.train.inference import load_classifier

    return load_classifier(root / "models").predict_proba(texts)


@pytest.mark.slow
def test_predictions_equal_the_checkpoint_and_the_version_carries_the_predictor(
    textcnn: tuple[Path, Any],
) -> None:
    from mlflow import MlflowClient

    from pipeline.predict.model import Predictor
    from pipeline.predict.settings import PredictSettings

    root, cfg = textcnn
    predictor = Predictor.load(cfg, "1", root=root)
    s = PredictSettings.from_cfg(cfg, root)
    client = MlflowClient(s.tracking_uri)
    version = client.get_model_version(s.registered_model, "1")
    assert (predictor.name, predictor.version, predictor.run_id) == (
        "prompt-classifier", "1", version.run_id
    )  # fmt: skip
    logged = {a.path for a in client.list_artifacts(version.run_id, "predictor")}
    assert logged == {"predictor/model.onnx", "predictor/predictor.json"}
    spec = json.loads((root / "reports/eval/predictor.json").read_text())
    assert spec["input_kind"] == "tokens" and spec["labels"] == predictor.labels
    assert spec["max_length"] == 128 and spec["context"] == "none"

    got = predictor.predict(TEXTS)
    probs = np.array([[p.probabilities[label] for label in predictor.labels] for p in got])
    np.testing.assert_allclose(probs, _classifier_probs(root, TEXTS), atol=1e-4)
    assert [p.truncated for p in got] == [False, False, True]  # 400 tokens > max_length 128
    assert all(p.confidence == max(p.probabilities.values()) for p in got)
    champion = json.loads((root / "reports/champion.json").read_text())
    assert set(champion) == {"name", "version", "run_id"}


@pytest.mark.slow
def test_an_alias_is_read_live_and_versions_are_cached(textcnn: tuple[Path, Any]) -> None:
    from mlflow import MlflowClient

    from pipeline.predict import registry
    from pipeline.predict.model import Predictor
    from pipeline.predict.settings import PredictSettings

    root, cfg = textcnn
    s = PredictSettings.from_cfg(cfg, root)
    client = MlflowClient(s.tracking_uri, registry_uri=s.tracking_uri)
    run_id = client.get_model_version(s.registered_model, "1").run_id
    second = str(
        client.create_model_version(s.registered_model, f"runs:/{run_id}/model", run_id).version
    )
    client.set_registered_model_alias(s.registered_model, "staging", "1")
    assert Predictor.load(cfg, "staging", root=root).version == "1"
    client.set_registered_model_alias(s.registered_model, "staging", second)
    # The sqlite fast path and MLflow's client agree, and both see the move.
    fast = registry._resolve_sqlite(s.tracking_uri, s.registered_model, "staging")
    slow = registry._resolve_client(s.tracking_uri, s.registered_model, "staging")
    assert fast == slow == registry.ModelRef(s.registered_model, second, run_id)
    assert Predictor.load(cfg, "staging", root=root).version == second
    assert (s.cache_dir / s.registered_model / second / "model.onnx").is_file()
    with pytest.raises(NotFoundError, match="no alias 'nobody'"):
        Predictor.load(cfg, "nobody", root=root)
    with pytest.raises(NotFoundError, match="no version 99"):
        Predictor.load(cfg, "99", root=root)


@pytest.mark.slow
def test_the_predict_path_imports_no_torch_lightning_mlflow_or_sklearn(
    textcnn: tuple[Path, Any],
) -> None:
    """A cached version loads and predicts in a fresh process with none of them imported,
    and a stray MLFLOW_TRACKING_URI (mlflow.set_tracking_uri exports one) is not followed."""
    root, cfg = textcnn
    from pipeline.predict.model import Predictor

    Predictor.load(cfg, "1", root=root)  # fetched into the cache
    script = (
        "import sys\n"
        "from pipeline.config import load_plain, compose\n"
        "from pipeline.predict.model import Predictor\n"
        f"cfg = compose({TINY + TEXTCNN!r})\n"
        f"p = Predictor.load(cfg, '1', root=__import__('pathlib').Path({str(root)!r}))\n"
        "print(p.predict(['please refund my parcel'])[0].label)\n"
        "bad = [m for m in ('torch', 'lightning', 'pytorch_lightning', 'mlflow', 'sklearn') "
        "if m in sys.modules]\n"
        "print('imported:', bad)\n"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root}/decoy.db"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, check=True).stdout  # fmt: skip
    assert out.splitlines()[-1] == "imported: []"
    assert not (root / "decoy.db").exists()


def test_hashed_rows_equal_scikit_learns_hashing_vectorizer() -> None:
    from pipeline.predict.hashing import hashed_rows
    from pipeline.train.lexical import LexicalSettings, hashed_counts

    texts = ["", "Hello, World! hello world", "naïve café — Ünïcode ß straße 東京 タワー",
             "a b c  d\t\te", "x" * 50, "The quick brown fox jumps over the lazy dog. " * 20,
             "code: def f(x): return x**2  # comment", "emoji 🙂🙂 and\nnew\nlines"]  # fmt: skip
    for word, char in [((1, 2), None), ((1, 1), (3, 5)), ((2, 3), (2, 2))]:
        settings = LexicalSettings(n_features=257, word_ngrams=word, char_ngrams=char)
        expected = hashed_counts(texts, settings).toarray()
        got = hashed_rows(texts, 257, word, char)
        np.testing.assert_array_equal(got, expected)


@pytest.mark.slow
def test_the_hybrid_on_the_real_encoder_predicts_as_evaluate_scores(tmp_path: Path) -> None:
    """The default model: MiniLM's ONNX export (the search path's encoder) and the hashed
    n-grams without scikit-learn give the checkpoint's probabilities."""
    from pipeline.predict.model import Predictor

    cfg = _trained(tmp_path, HYBRID)
    predictor = Predictor.load(cfg, "1", root=tmp_path)
    spec = predictor.spec
    assert spec.input_kind == "embedding+lexical" and spec.context == "first_turn"
    assert spec.lexical is not None and spec.lexical.n_features == 1024
    assert spec.encoder is not None and spec.encoder.max_length == 256
    long_text = "refund " * 300  # 300 tokens > the encoder's 256
    got = predictor.predict([*TEXTS[:2], long_text])
    probs = np.array([[p.probabilities[label] for label in predictor.labels] for p in got])
    np.testing.assert_allclose(
        probs, _classifier_probs(tmp_path, [*TEXTS[:2], long_text]), atol=1e-4
    )
    assert [p.truncated for p in got] == [False, False, True]
    # `pipeline predict` on this version (cached by the load above) loads only the ONNX
    # encoder and head: the import path holds no torch, Lightning, MLflow or scikit-learn.
    rows, heavy = _cli_imports(tmp_path, "--model", "1", TEXTS[0], long_text)
    assert heavy == []
    assert [r["label"] for r in rows] == [got[0].label, got[2].label]
    assert [r["truncated"] for r in rows] == [False, True]

    # The predictions stage reads the vectors training stored for the same texts (every kept
    # record), and encodes only the rest: the same probabilities and truncation flags.
    from pipeline.stages.predictions import _read_records, model_inputs

    cached = Predictor.load(cfg, "1", root=tmp_path, cached=True)
    unseen = "parcel " * 300  # embedded by nobody yet, and cut at 256 tokens
    texts = [*model_inputs(_read_records(tmp_path / cfg.paths.records), spec)[:20], unseen]
    probs_cached, cut_cached = cached.predict_proba(texts)
    probs_onnx, cut_onnx = predictor.predict_proba(texts)
    assert cached._featurise.cache_hits == 20  # not the unseen text
    np.testing.assert_allclose(probs_cached, probs_onnx, atol=1e-4)
    assert cut_cached == cut_onnx and cut_cached[-1]

    # POST /predict hands the monitoring log the vectors the model read: they are the search
    # path's encoder's (the log's), so the service encodes each input once, not twice.
    from pipeline.embed.api import EmbedSettings
    from pipeline.embed.query import QueryEncoder

    settings = EmbedSettings.from_cfg(cfg.embed)
    assert predictor.encodes_like(settings.model, settings.backend, settings.max_length)
    assert not predictor.encodes_like(settings.model, settings.backend, 128)
    same, vectors = predictor.predict_and_embed([*TEXTS[:2], long_text])
    assert [p.probabilities for p in same] == [p.probabilities for p in got]
    encoder = QueryEncoder(settings, tmp_path / cfg.paths.embed_cache)
    np.testing.assert_allclose(vectors, encoder.encode_many([*TEXTS[:2], long_text]), atol=1e-5)
    _served_predict_logs_the_model_s_vectors(tmp_path, cfg, encoder.encode_many(TEXTS[:2]))


def _served_predict_logs_the_model_s_vectors(root: Path, cfg: Any, expected: np.ndarray) -> None:
    """POST /predict with this hybrid as champion, in process: the prediction log holds the
    projection of the vectors the search encoder gives, though the log never encoded them."""
    from fastapi.testclient import TestClient
    from mlflow import MlflowClient

    from pipeline.api.app import create_app
    from pipeline.api.run import service_config
    from pipeline.monitor.drift import projection
    from pipeline.predict.settings import PredictSettings
    from pipeline.service.keys import create_key
    from pipeline.store import service as service_db

    s = PredictSettings.from_cfg(cfg, root)
    MlflowClient(s.tracking_uri, registry_uri=s.tracking_uri).set_registered_model_alias(
        s.registered_model, "champion", "1"
    )
    config = service_config(root, root / "params.yaml")
    key = create_key(config.paths.service_db, "reader", "r")[0]
    encoded: list[str] = []
    with TestClient(create_app(config)) as client:
        log = client.app.state.service.predictions
        log.embedder = lambda texts: encoded.extend(texts) or expected
        response = client.post(
            "/predict", json={"texts": TEXTS[:2]}, headers={"Authorization": f"Bearer {key}"}
        )
        assert response.status_code == 200, response.text
        log.flush()
    assert encoded == []  # the model's vectors were handed over, nothing encoded again
    with service_db.open_service_db(config.paths.service_db) as con:
        logged = con.execute("SELECT embedding FROM predictions").fetchall()
    want = expected @ projection(expected.shape[1], log.projection_dims, log.seed)
    got = np.array([row[0] for row in logged])
    assert len(got) == 2
    # Row order in the log is not the request's: match each logged row to its text's vector.
    np.testing.assert_allclose(np.sort(got, axis=0), np.sort(want, axis=0), atol=1e-4)


@pytest.mark.slow
def test_the_cli_labels_texts_and_reports_truncation(textcnn: tuple[Path, Any]) -> None:
    root, _ = textcnn
    done = _cli(root, "--model", "1", "--json", "please refund my parcel", TEXTS[2])
    assert done.returncode == 0, done.stderr  # the first call may fetch v1 through MLflow
    rows, heavy = _cli_imports(root, "--model", "1", "please refund my parcel")
    assert heavy == [] and rows[0]["version"] == "1"  # the token model's path: no torch either
    rows = json.loads(done.stdout)
    assert [r["truncated"] for r in rows] == [False, True]
    assert {r["version"] for r in rows} == {"1"} and rows[0]["label"] in rows[0]["probabilities"]
    human = _cli(root, "--model", "1", TEXTS[2])
    assert human.returncode == 0 and "(truncated)" in human.stdout
    assert "prompt-classifier v1" in human.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["   "], "text 1: the text is empty"),
        (["fine", b"caf\xe9 latin-1"], "text 2: the text is not valid UTF-8"),
        (["-S", "predict.max_text_chars=5", "too long"], "more than predict.max_text_chars"),
        ([], "give TEXT... or --input FILE"),
    ],
)
def test_the_cli_refuses_bad_text_with_exit_2(
    textcnn: tuple[Path, Any], args: list[str | bytes], message: str
) -> None:
    root, _ = textcnn
    done = _cli(root, "--model", "1", *args)
    assert done.returncode == 2 and message in done.stderr, done.stderr


@pytest.mark.slow
def test_a_file_is_labelled_to_parquet_and_a_bad_row_names_its_line(
    textcnn: tuple[Path, Any], tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    root, _ = textcnn
    source, target = tmp_path / "in.jsonl", tmp_path / "out.parquet"
    rows = [{"id": "a", "prompt": "please refund"}, {"text": "translate french"}]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    done = _cli(root, "--model", "1", "--input", str(source), "--output", str(target))
    assert done.returncode == 0, done.stderr
    table = pq.read_table(target).to_pylist()
    assert [(r["line"], r["id"], r["model_version"]) for r in table] == [
        (1, "a", "1"),
        (2, None, "1"),
    ]
    assert abs(sum(dict(table[0]["probabilities"]).values()) - 1) < 1e-5

    source.write_text('{"prompt": "ok"}\n{"response": "no prompt"}\n', encoding="utf-8")
    bad = tmp_path / "bad.jsonl"
    done = _cli(root, "--model", "1", "--input", str(source), "--output", str(bad))
    assert done.returncode == 2 and f"{source}: line 2: no prompt or text field" in done.stderr
    assert not bad.exists()  # nothing half-written


@pytest.mark.slow
def test_the_stage_writes_a_side_file_the_store_view_and_disagreements_read(
    textcnn: tuple[Path, Any],
) -> None:
    import duckdb
    import pyarrow.parquet as pq

    from pipeline.stages import predictions
    from pipeline.store.disagreements import disagreements

    root, cfg = textcnn
    champion = root / "reports/champion.json"
    saved = champion.read_text()
    champion.write_text(json.dumps({"name": "prompt-classifier", "version": "1", "run_id": ""}))
    try:
        report = predictions.run(cfg, root)
    finally:
        champion.write_text(saved)
    out = pq.read_table(root / "data/predictions/predictions.parquet").to_pylist()
    assert report["records"] == len(out) == 120 and {r["model_version"] for r in out} == {"1"}
    # A store with the kept records: the annotated view joins the predictions by id.
    store = root / "data/dedup/store.duckdb"
    with duckdb.connect(str(store)) as con:
        con.execute("CREATE OR REPLACE TABLE records AS SELECT * FROM "
                    f"read_parquet('{root}/data/dedup/records.parquet')")  # fmt: skip
    found = disagreements(store, limit=500)
    assert len(found) == report["disagreements"]
    assert all(r["label"] != r["predicted_label"] for r in found)
    confidences = [r["predicted_confidence"] for r in found]
    assert confidences == sorted(confidences, reverse=True)
