"""The review loop end to end: the real service over HTTP (writer allowed, reader refused),
the CLI in subprocesses writing the same corrections file at once, and a decision taken
from `pipeline labels issues` (real encoder, real cleanlab) applied by the real dedup stage."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import httpx
import pyarrow.parquet as pq
import pytest
from helpers.serve import build_store, start_serve, write_params
from test_dedup_stage import make_cfg, write_jsonl

from pipeline.dedup.corrections import read
from pipeline.service.keys import create_key


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("labels-serve")
    config = build_store(root)
    params = write_params(config, root)
    db = config.paths.service_db
    keys = {role: create_key(db, role, f"{role}-key")[0] for role in ("reader", "writer")}
    keys["alice"] = create_key(db, "writer", "alice-app", {"user_id": ["alice"]})[0]
    proc, url, _ = start_serve(params, root)
    try:
        yield url, keys, config, params, root
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)


def _post(url: str, key: str | None, record_id: str, body: dict) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{url}/labels/{record_id}/review", json=body, headers=headers, timeout=30)


@pytest.mark.slow  # starts a server process
def test_review_over_http_needs_a_writer_key_in_scope(server) -> None:
    url, keys, config, _, _ = server
    body = {"action": "correct", "label": "trivia"}
    assert _post(url, None, "b1", body).status_code == 401
    refused = _post(url, keys["reader"], "b1", body)
    assert refused.status_code == 403 and "needs writer" in refused.json()["detail"]
    assert _post(url, keys["alice"], "b1", body).status_code == 403  # bob's record
    done = _post(url, keys["writer"], "b1", body)
    assert done.status_code == 201, done.text
    assert done.json() | {"at": "-"} == {"id": "b1", "action": "correct", "label": "trivia",
                                         "previous_label": "billing", "by": "key:writer-key",
                                         "at": "-"}  # fmt: skip
    assert read(config.paths.corrections)["b1"].by == "key:writer-key"
    assert _post(url, keys["writer"], "nope", body).status_code == 404
    unknown = _post(url, keys["writer"], "b1", {"action": "correct", "label": "tirvia"})
    assert unknown.status_code == 400 and "not one of the data's" in unknown.json()["detail"]
    # No `pipeline labels issues` has run: there is no suggestion to accept.
    assert _post(url, keys["writer"], "a1", {"action": "accept"}).status_code == 404
    assert _post(url, keys["writer"], "a1", {"action": "dismiss", "label": "x"}).status_code == 400
    assert _post(url, keys["writer"], "a1", {"action": "delete"}).status_code == 422
    assert _post(url, keys["alice"], "a1", {"action": "dismiss"}).status_code == 201


@pytest.mark.slow  # CLI processes beside the server
def test_cli_and_service_append_at_once_without_losing_a_line(server) -> None:
    url, keys, config, params, root = server
    before = len(config.paths.corrections.read_text().splitlines())
    posts = 12
    start = threading.Barrier(posts + 1)
    statuses: list[int] = []

    def post(i: int) -> None:
        start.wait()
        label = random.Random(i).choice(["support", "billing", "trivia"])
        statuses.append(_post(url, keys["writer"], "c1", {"action": "correct", "label": label})
                        .status_code)  # fmt: skip

    threads = [threading.Thread(target=post, args=(i,)) for i in range(posts)]
    for t in threads:
        t.start()
    clis = [
        subprocess.Popen([sys.executable, "-m", "pipeline", "labels", "review", "--params",
                          str(params), "n1", "--correct", "translate", "--by", f"cli-{i}"],
                         cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(3)
    ]  # fmt: skip
    start.wait()
    for t in threads:
        t.join(60)
    outs = [p.communicate(timeout=120) for p in clis]
    assert [p.returncode for p in clis] == [0, 0, 0], outs
    assert statuses == [201] * posts
    lines = config.paths.corrections.read_text().splitlines()
    assert len(lines) == before + posts + 3
    rows = [json.loads(line) for line in lines]  # every line whole
    assert sum(row["by"].startswith("cli-") for row in rows) == 3
    assert read(config.paths.corrections)["n1"].label == "translate"


def _dataset() -> list[dict]:
    """Three clear tasks, 24 records each, and two planted wrong labels."""
    rng = random.Random(3)
    rows = []
    foods = ["bread", "salmon", "lasagne", "muffins", "a chicken", "potatoes", "brownies"]
    phrases = ["good morning", "thank you", "where is the station", "I am hungry", "see you soon"]
    langs = ["German", "French", "Spanish", "Italian", "Dutch"]
    for i in range(24):
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        rows.append({"id": f"m{i}", "prompt": f"What is {a} multiplied by {b}? Show the "
                     f"arithmetic step by step.", "label": "math"})  # fmt: skip
        rows.append({"id": f"t{i}", "prompt": f"Translate '{rng.choice(phrases)}' into "
                     f"{rng.choice(langs)}, please.", "label": "translation"})  # fmt: skip
        rows.append({"id": f"c{i}", "prompt": f"How long should I bake {rng.choice(foods)} in "
                     f"the oven at {rng.choice([160, 180, 200, 220])} degrees?",
                     "label": "cooking"})  # fmt: skip
    rows[4]["label"] = "math"  # t1: a translation
    rows[8]["label"] = "translation"  # c2: a cooking question
    for row in rows:
        row["response"] = "ok"
    return rows


@pytest.mark.slow  # the real encoder, cleanlab and the dedup stage, each in a subprocess
def test_issue_reviewed_in_the_cli_is_applied_by_the_dedup_stage(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "raw" / "rows.jsonl", _dataset())
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    make_cfg(tmp_path, data, uri, "embed.backend=torch")  # writes params.yaml
    assert _cli("dedup", cwd=tmp_path).returncode == 0
    found = _cli("labels", "issues", "--json", cwd=tmp_path)
    assert found.returncode == 0, found.stderr
    issues = json.loads(found.stdout)
    flagged = {row["id"]: row for row in issues}
    assert {"t1", "c2"} <= set(flagged), issues
    assert flagged["t1"]["label"] == "math" and flagged["t1"]["suggested_label"] == "translation"
    accepted = _cli("labels", "review", "t1", "--accept", "--by", "ann", "--json", cwd=tmp_path)
    assert accepted.returncode == 0, accepted.stderr
    assert json.loads(accepted.stdout)["label"] == "translation"
    assert _cli("labels", "review", "c2", "--dismiss", "--by", "bo", cwd=tmp_path).returncode == 0
    assert _cli("dedup", cwd=tmp_path).returncode == 0
    con = duckdb.connect(str(tmp_path / "data/dedup/store.duckdb"), read_only=True)
    assert con.execute("SELECT label FROM records WHERE id = 't1'").fetchall() == [("translation",)]
    who = con.execute("SELECT record_id, original_label, corrected_by, corrected_at IS NOT NULL "
                      "FROM label_corrections ORDER BY record_id").fetchall()  # fmt: skip
    con.close()
    assert who == [("c2", "translation", "bo", True), ("t1", "math", "ann", True)]
    kept = pq.read_table(tmp_path / "data/dedup/records.parquet").to_pylist()
    assert {r["id"]: r["label"] for r in kept}["t1"] == "translation"
    again = json.loads(_cli("labels", "issues", "--json", cwd=tmp_path).stdout)
    assert not {"t1", "c2"} & {row["id"] for row in again}  # reviewed: not flagged again


@pytest.mark.slow  # a CLI process
def test_interactive_review_on_a_terminal(tmp_path: Path) -> None:
    import pty

    from pipeline.labels.review import issues_path, save_issues

    config = build_store(tmp_path)
    params = write_params(config, tmp_path)
    flagged = [
        {"id": "b2", "label": "trivia", "suggested_label": "billing", "score": 0.9, "prompt": "x"},
        {"id": "c1", "label": "creative", "suggested_label": "trivia", "score": 0.8, "prompt": "y"},
        {"id": "n1", "label": "translate", "suggested_label": "trivia", "score": 0.7,
         "prompt": "z"},
    ]  # fmt: skip
    save_issues(issues_path(config.paths.embed_cache.parent), {"issues": flagged})
    master, slave = pty.openpty()  # stdin is a terminal: the interactive mode
    os.write(master, b"a\nd\nq\n")
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "labels", "review", "--params", str(params),
         "--by", "tty-user"],
        stdin=slave, capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    os.close(slave)
    os.close(master)
    assert done.returncode == 0, done.stderr
    decisions = read(config.paths.corrections)
    assert {k: (v.action, v.label, v.by) for k, v in decisions.items()} == {
        "b2": ("accept", "billing", "tty-user"),
        "c1": ("dismiss", None, "tty-user"),
    }
