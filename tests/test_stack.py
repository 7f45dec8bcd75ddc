"""A team's stack, for real: `python -m pipeline.stack up` starts PostgreSQL, MLflow (basic
auth, proxied artifacts) and the WebDAV DVC remote; the whole pipeline, `pipeline runs`, the
champion alias and the search service work with `tracking=server`; `dvc push` from one clone
and `dvc pull` into a clean second clone reproduce every stage output. Every server speaks
TLS with the stack's own CA: clients given it get through, a client without it is refused."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers.wait import wait_until

from pipeline.service.tls import client_context
from pipeline.stack import postgres

pytestmark = pytest.mark.slow
REPO_ROOT = Path(__file__).resolve().parent.parent
ALICE = ("alice", "alice-team-password")  # a team member from the users file, not the admin


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _sh(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 1800) -> str:
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(args)}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout + out.stderr


@pytest.fixture(scope="module")
def stack() -> Iterator[dict[str, str]]:
    """The stack up on free loopback ports in a scratch directory; down and removed after."""
    if postgres.bindir() is None and os.geteuid() != 0:
        pytest.skip("PostgreSQL is not installed and only root can apt-get install it")
    # Not under pytest's tmp_path: that is mode 700, and the cluster's owner (postgres) must
    # reach the directory when the tests run as root.
    scratch = Path(tempfile.mkdtemp(prefix="pipeline-stack-"))
    scratch.chmod(0o755)
    (scratch / "users.txt").write_text(f"{ALICE[0]}:{ALICE[1]}\n", encoding="utf-8")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "STACK_DIR": str(scratch / "stack"),
        "STACK_USERS_FILE": str(scratch / "users.txt"),
        "STACK_PG_PORT": str(_free_port()),
        "STACK_MLFLOW_PORT": str(_free_port()),
        "STACK_DAV_PORT": str(_free_port()),
    }
    for leaked in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        env.pop(leaked, None)
    stack_cmd = [sys.executable, "-m", "pipeline.stack"]
    try:
        _sh([*stack_cmd, "up"], REPO_ROOT, env, timeout=900)
        yield env
    finally:
        subprocess.run([*stack_cmd, "down"], cwd=REPO_ROOT, env=env, capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)


def test_up_is_idempotent_and_status_reports_every_server(stack) -> None:
    stack_cmd = [sys.executable, "-m", "pipeline.stack"]
    again = _sh([*stack_cmd, "up"], REPO_ROOT, stack)
    status = _sh([*stack_cmd, "status"], REPO_ROOT, stack)
    assert status.count("running") == 3, status
    assert "stack up" in again
    ca = client_context(Path(stack["STACK_DIR"]) / "tls" / "ca.pem")
    url = f"https://127.0.0.1:{stack['STACK_MLFLOW_PORT']}/api/2.0/mlflow/experiments/search"
    dav = f"https://127.0.0.1:{stack['STACK_DAV_PORT']}/"
    # TLS: a client that trusts only the system's roots is refused by both servers.
    for server in (url, dav):
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(server, verify=client_context(), timeout=60)
    # Basic auth, verified against the stack's CA: no login, no runs; a wrong password neither.
    for login, code in ((None, 401), ((ALICE[0], "wrong"), 401), (ALICE, 200)):
        reply = httpx.get(url, params={"max_results": 1}, auth=login, timeout=60, verify=ca)
        assert reply.status_code == code
    propfind = httpx.request("PROPFIND", dav, headers={"Depth": "0"}, timeout=60, verify=ca)
    assert propfind.status_code == 401


def _exports(text: str) -> dict[str, str]:
    """The `export KEY=VALUE` lines `python -m pipeline.stack env` prints."""
    pairs = (shlex.split(line)[1].split("=", 1) for line in text.splitlines() if line)
    return dict(pairs)


def test_a_tracked_run_and_pipeline_runs_over_tls(stack, tmp_path: Path, monkeypatch) -> None:
    """The pipeline's tracking=server config on the stack's HTTPS MLflow, with the CA that
    `stack env` exports: a stage's run (the retrieval stage's logger) is written, and
    `pipeline runs` lists it; without the CA, `pipeline runs` is exit 2 naming the server."""
    from pipeline.config import compose
    from pipeline.retrieval.tracking import log_run

    env_cmd = [sys.executable, "-m", "pipeline.stack", "env", "--user", ALICE[0]]
    exports = _exports(_sh(env_cmd, REPO_ROOT, stack))
    assert exports["MLFLOW_TRACKING_URI"].startswith("https://")
    for name, value in exports.items():
        monkeypatch.setenv(name, value)
    figures = {"queries": 2, "hybrid": {"recall@10": 0.5, "ndcg@10": 0.25}}
    report = {"judged": figures, "bootstrap": figures, "latency_ms": {}, "seconds": 0.5}
    run_id = log_run(compose(["tracking=server"]), tmp_path, report, {"fusion": "rrf"})

    runs = [sys.executable, "-m", "pipeline", "runs", "--kind", "retrieval", "--json",
            "--root", str(REPO_ROOT), "-S", "tracking=server"]  # fmt: skip
    listed = _sh(runs, tmp_path, {**stack, **exports})
    assert run_id in listed, listed  # --json: the full run id
    without = {**stack, **exports, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    del without["MLFLOW_TRACKING_SERVER_CERT_PATH"]
    done = subprocess.run(runs, cwd=tmp_path, env=without, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert done.returncode == 2, done.stderr[-3000:]
    assert f"{exports['MLFLOW_TRACKING_URI']}: its TLS certificate did not verify" in done.stderr


def _clone_of_this_tree(dest: Path, env: dict[str, str]) -> None:
    """A git repository holding this working tree's tracked and new (not ignored) files."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    for rel in listed:
        if (REPO_ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / rel, dest / rel)
    _sh(["git", "init", "-q", "-b", "main"], dest, env)
    _sh(["git", "add", "-A"], dest, env)
    _sh(["git", "commit", "-qm", "copy"], dest, env)


def _outputs(work: Path) -> dict[str, str]:
    """Every file under the stages' outputs, relative path -> md5 (what DVC compares)."""
    import hashlib

    found = {}
    for out in ("data/dedup", "models", "reports/eval", "data/index", "data/anomaly"):
        for path in sorted((work / out).rglob("*")):
            if path.is_file():
                found[str(path.relative_to(work))] = hashlib.md5(path.read_bytes()).hexdigest()
    return found


def test_the_pipeline_on_the_team_server_and_the_shared_remote(
    stack, tmp_path, monkeypatch
) -> None:
    exports = _exports(_sh([sys.executable, "-m", "pipeline.stack", "env", "--user", ALICE[0]],
                           REPO_ROOT, stack))  # fmt: skip
    assert exports["MLFLOW_TRACKING_URI"] == f"https://127.0.0.1:{stack['STACK_MLFLOW_PORT']}"
    assert exports["MLFLOW_TRACKING_USERNAME"] == ALICE[0]
    assert Path(exports["MLFLOW_TRACKING_SERVER_CERT_PATH"]).name == "ca.pem"
    env = {
        **stack,
        **exports,
        "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
    }  # fmt: skip
    first = tmp_path / "first"
    first.mkdir()
    _clone_of_this_tree(first, env)
    py = [sys.executable, "-m"]
    _sh([*py, "pipeline.config", "tracking=server", "trainer.max_epochs=1", "--write",
         "params.yaml"], first, env)  # fmt: skip
    _sh(["dvc", "repro"], first, env)
    # Nothing went to a local store: runs, registry and artifacts are the server's.
    assert not (first / "mlflow.db").exists() and not (first / "mlruns").exists()
    artifacts = Path(stack["STACK_DIR"]) / "artifacts"
    assert any(artifacts.rglob("MLmodel")), "the model was not stored by the server"

    runs = json.loads(_sh(["pipeline", "runs", "--json"], first, env))
    assert runs, "pipeline runs listed no model run"
    from mlflow import MlflowClient

    for name, value in exports.items():
        monkeypatch.setenv(name, value)  # the login and the CA MLflow's client reads
    client = MlflowClient(env["MLFLOW_TRACKING_URI"], env["MLFLOW_TRACKING_URI"])
    champion = client.get_model_version_by_alias("prompt-classifier", "champion")
    assert champion.run_id in json.dumps(runs)

    _serve_health(first, env, Path(stack["STACK_DIR"]) / "tls")

    # The shared remote: push from this clone, pull into a clean clone of its git history.
    _sh(["git", "add", "-A"], first, env)
    _sh(["git", "commit", "-qm", "pipeline outputs"], first, env)
    _sh([*py, "pipeline.stack", "remote", "--user", ALICE[0]], first, env)
    assert "ssl_verify" in (first / ".dvc" / "config.local").read_text()
    _sh(["dvc", "push"], first, env)
    second = tmp_path / "second"
    _sh(["git", "clone", "-q", str(first), str(second)], tmp_path, env)
    _sh([*py, "pipeline.stack", "remote", "--user", ALICE[0]], second, env)
    _sh(["dvc", "pull"], second, env)
    assert _outputs(second) == _outputs(first) and _outputs(first)
    assert "Cache and remote 'team' are in sync." in _sh(["dvc", "status", "-c"], second, env)
    assert "Data and pipelines are up to date." in _sh(["dvc", "status"], second, env)


def _serve_health(work: Path, env: dict[str, str], tls: Path) -> None:
    """The search service starts on the server-tracked project, over TLS with the stack's
    pair (`serve.tls`), and reports ready to a client that verifies against the CA."""
    port = _free_port()
    log = (work / "serve.log").open("w")
    pair = [f"serve.tls.cert={tls / 'server.pem'}", f"serve.tls.key={tls / 'server.key'}"]
    cmd = ["pipeline", "serve", "--port", str(port), "-S", pair[0], "-S", pair[1]]
    proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    ca = client_context(tls / "ca.pem")
    try:

        def ready() -> dict | None:
            assert proc.poll() is None, (work / "serve.log").read_text()[-2000:]
            try:
                return httpx.get(f"https://127.0.0.1:{port}/health", timeout=30, verify=ca).json()
            except httpx.HTTPError:
                return None

        health = wait_until(ready, "the search service", timeout=120)
        assert health["status"] == "ok", health
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
