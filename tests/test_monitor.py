"""The monitor: drift statistics against exact expectations, the prediction log in a real
DuckDB file, feedback and live accuracy, and planted drift (T0 training tasks, then hh-rlhf
turns) reported by the real `pipeline monitor` CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from helpers.drift import NearestCentroid, hh_turns, replay, t0_rows

from pipeline.errors import NotFoundError, UserInputError
from pipeline.monitor import drift
from pipeline.monitor.feedback import label_prediction
from pipeline.monitor.log import PredictionLog, input_hash
from pipeline.monitor.reference import reference_from
from pipeline.monitor.report import monitor_report, parse_since
from pipeline.monitor.settings import MonitorSettings, parse_duration
from pipeline.service.keys import Principal
from pipeline.store import service as service_db
from pipeline.store.scope import Scope

HOUR = timedelta(hours=1)


def test_psi_is_zero_for_the_training_mix_and_large_for_a_collapse():
    train = {"math": 50, "qa": 30, "coding": 20}
    assert drift.psi(train, {"math": 500, "qa": 300, "coding": 200}) == pytest.approx(0.0)
    collapsed = drift.psi(train, {"math": 5, "qa": 95})
    assert collapsed > 1.0
    # By hand: sum (a - e) ln(a / e) over the three labels (coding smoothed to 1e-4).
    e = np.array([0.2, 0.5, 0.3])
    a = np.array([1e-4, 0.05, 0.95])
    a /= a.sum()
    assert collapsed == pytest.approx(float(np.sum((a - e) * np.log(a / e))), rel=1e-6)
    stat, p = drift.chi_square(train, {"math": 5, "qa": 95})
    assert p < 1e-10 and stat > 100


def test_the_mmd_test_holds_its_false_alarm_rate_and_finds_a_small_shift():
    rng = np.random.default_rng(3)
    base = rng.standard_normal((400, 16))
    null_p = [
        drift.mmd_test(base[:100], rng.standard_normal((100, 16)), 99, seed)[1]
        for seed in range(30)
    ]
    assert sum(p < 0.05 for p in null_p) <= 5  # ~1.5 expected of 30 at 5 %
    shifted = rng.standard_normal((100, 16)) + 0.4
    mmd2, p = drift.mmd_test(base[:100], shifted, 99)
    assert mmd2 > 0 and p < 0.02


def test_settings_name_the_bad_key_and_durations_parse():
    assert parse_duration("90s") == timedelta(seconds=90)
    assert parse_duration("1.5h") == timedelta(minutes=90)
    with pytest.raises(UserInputError, match=r"monitor\.window"):
        MonitorSettings(window="soon")
    with pytest.raises(UserInputError, match=r"monitor\.treshold"):
        MonitorSettings.from_cfg({"treshold": 1})
    now = datetime(2026, 11, 30, 20, tzinfo=UTC)
    assert parse_since("6h", now) == now - timedelta(hours=6)
    assert parse_since("2026-11-30T12:00", now) == datetime(2026, 11, 30, 12, tzinfo=UTC)
    with pytest.raises(UserInputError, match="--since"):
        parse_since("yesterday", now)


def _writer() -> Principal:
    return Principal("k1", "labeller", "writer", Scope.all())


def test_the_log_keeps_no_text_unless_configured_and_then_redacts_it(tmp_path):
    db = tmp_path / "service.duckdb"
    secret = "mail me at jane.doe@example.com about the refund"
    for log_text in (False, True):
        log = PredictionLog(db, log_text=log_text)
        log.record(f"p{log_text}", "k1", "clf", "3", secret, "support", 0.8, 2.5, False)
        assert log.pending() == 1 and log.flush() == 1 and log.pending() == 0
    with service_db.open_service_db(db) as con:
        rows = con.execute(
            "SELECT prediction_id, text, input_hash, embedding FROM predictions ORDER BY 1"
        ).fetchall()
    assert rows[0][1] is None and rows[0][3] is None
    assert "jane.doe@example.com" not in rows[1][1] and "<EMAIL>" in rows[1][1]
    assert rows[0][2] == rows[1][2] == input_hash(secret)


def test_a_vector_the_predictor_gives_is_logged_as_the_encoder_s_would_be(tmp_path):
    rng = np.random.default_rng(0)
    vectors = {f"text {i}": rng.normal(size=16).astype(np.float32) for i in range(4)}
    asked: list[str] = []

    def embedder(texts):
        asked.extend(texts)
        return np.stack([vectors[t] for t in texts])

    logged = {}
    for mode in ("encoder", "given", "mixed"):
        db = tmp_path / f"{mode}.duckdb"
        log = PredictionLog(db, embedder=embedder, projection_dims=8)
        asked.clear()
        for i, (text, vector) in enumerate(vectors.items()):
            give = mode == "given" or (mode == "mixed" and i % 2 == 0)
            log.record(f"p{i}", "k", "clf", "1", text, "a", 0.9, 1.0, False,
                       embedding=vector if give else None)  # fmt: skip
        assert log.flush() == 4
        # The flush encodes only what the predictor did not give.
        expected = {"encoder": list(vectors), "given": [], "mixed": ["text 1", "text 3"]}
        assert asked == expected[mode]
        with service_db.open_service_db(db) as con:
            logged[mode] = con.execute(
                "SELECT embedding FROM predictions ORDER BY prediction_id"
            ).fetchall()
    for mode in ("given", "mixed"):
        np.testing.assert_allclose(
            np.array([row[0] for row in logged[mode]]),
            np.array([row[0] for row in logged["encoder"]]),
            rtol=1e-6,
        )


def test_windows_report_label_drift_confidence_and_live_accuracy(tmp_path):
    db = tmp_path / "service.duckdb"
    settings = MonitorSettings(min_predictions=20)
    reference = reference_from(["math"] * 50 + ["qa"] * 50, None, settings)
    log = PredictionLog(db)
    steady = [("2 + 2", "math", 0.9), ("who wrote hamlet", "qa", 0.8)] * 15
    collapsed = [("what is love", "qa", 0.4)] * 30
    starts = replay(log, [steady, collapsed, steady[:6]], HOUR)
    # Feedback on two predictions of the first window: one confirmed, one corrected.
    with service_db.open_service_db(db) as con:
        first = [r[0] for r in con.execute(
            "SELECT prediction_id FROM predictions WHERE label = 'math' ORDER BY ts LIMIT 2"
        ).fetchall()]  # fmt: skip
    assert label_prediction(db, _writer(), first[0], "math")["correct"] is True
    assert label_prediction(db, _writer(), first[1], "qa")["correct"] is False
    with pytest.raises(NotFoundError):
        label_prediction(db, _writer(), uuid.uuid4().hex, "qa")
    with pytest.raises(UserInputError):
        label_prediction(db, _writer(), first[0], "  ")

    report = monitor_report(db, reference, settings, "1h", since=starts[0])
    assert report["status"] == "drift"
    ok, drifted, few = report["windows"]
    assert [w["start"] for w in report["windows"]] == [s.isoformat() for s in starts]
    assert ok["status"] == "ok" and ok["predictions"] == 30 and ok["label_psi"] < 0.01
    assert ok["live_accuracy"] == 0.5 and ok["feedback"] == 2
    assert ok["mean_confidence"] == pytest.approx(0.85)
    assert drifted["status"] == "drift" and "label PSI" in drifted["reasons"][0]
    assert drifted["labels"] == {"qa": 30} and drifted["live_accuracy"] is None
    assert few["status"] == "too_few"  # 6 predictions: never an alarm
    assert ok["embedding"] is None  # no encoder: the rest still reported
    # A confidence floor turns a low-confidence window into drift too.
    strict = MonitorSettings(min_predictions=20, confidence_min=0.5, label_psi_max=10)
    again = monitor_report(db, reference, strict, "1h", since=starts[0])
    assert [w["status"] for w in again["windows"]] == ["ok", "drift", "too_few"]


def test_a_busy_service_db_keeps_the_rows_for_the_next_flush(tmp_path):
    db = tmp_path / "service.duckdb"
    with service_db.open_service_db(db):
        pass
    log = PredictionLog(db, lock_timeout=0.2)
    log.record("p1", "k1", "clf", "1", "hello", "qa", 0.5, 1.0, False)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb,sys; c=duckdb.connect(sys.argv[1]); "
         "print('held', flush=True); sys.stdin.read()", str(db)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        from pipeline.errors import BusyError

        with pytest.raises(BusyError):
            log.flush()
        assert log.pending() == 1
    finally:
        holder.communicate("")
    assert log.flush() == 1


# --- planted drift, real data and the real encoder and CLI -----------------------------


@pytest.mark.slow
def test_planted_drift_shows_within_one_window_and_undrifted_windows_do_not_alarm(
    tmp_path: Path, t0_prompts_path: Path, hh_rlhf_path: Path
) -> None:
    """The training set is prompts of five T0 tasks; a nearest-centroid model on their
    embeddings predicts two windows of unseen prompts of the same tasks, then a window of
    hh-rlhf first turns. Only the hh-rlhf window alarms, and `pipeline monitor` exits 6."""
    from pipeline.embed import EmbedSettings, embed_texts

    cache = tmp_path / "cache"

    def embed(texts: list[str]) -> np.ndarray:
        return embed_texts(texts, EmbedSettings(), cache_dir=cache)

    rows = t0_rows(t0_prompts_path, per_task=80)
    train, live = rows[:240], rows[240:]
    records = tmp_path / "records.parquet"
    pq.write_table(
        pa.table({"prompt": [t for t, _ in train], "label": [lab for _, lab in train]}), records
    )
    model = NearestCentroid(embed, train)
    db = tmp_path / "service.duckdb"
    log = PredictionLog(db, embedder=embed, projection_dims=64)
    texts = [t for t, _ in live]
    windows = [model.predict(texts[:80]), model.predict(texts[80:160])]
    windows.append(model.predict(hh_turns(hh_rlhf_path, 80)))
    starts = replay(log, windows, HOUR)

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({
        "paths": {"records": str(records), "service_db": str(db), "embed_cache": str(cache)},
        "monitor": {"reference_size": 240, "sample_size": 80, "min_predictions": 50},
    }))  # fmt: skip
    since = starts[0].isoformat()
    cmd = [sys.executable, "-m", "pipeline", "monitor", "--params", str(params), "--json"]
    out = subprocess.run([*cmd, "--since", since], capture_output=True, text=True, timeout=600)
    assert out.returncode == 6, out.stderr
    report = json.loads(out.stdout)
    assert report["status"] == "drift"
    statuses = [w["status"] for w in report["windows"]]
    assert statuses == ["ok", "ok", "drift"], [w["reasons"] for w in report["windows"]]
    hh = report["windows"][2]
    assert hh["embedding"]["p_value"] < 0.01
    assert all(w["embedding"]["p_value"] > 0.01 for w in report["windows"][:2])
    # Only the undrifted windows: "ok", exit 0.
    calm = subprocess.run(
        [*cmd, "--since", since, "--until", starts[2].isoformat()],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert calm.returncode == 0, calm.stderr
    assert json.loads(calm.stdout)["status"] == "ok"
