"""The stack's two Python servers, MLflow (basic auth, proxied artifacts, on PostgreSQL) and
WsgiDAV (the DVC remote): detached processes with a pid file and a log in `.stack/`."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from pipeline.errors import PipelineError, UserInputError
from pipeline.service.tls import TlsSettings, client_context
from pipeline.stack import postgres
from pipeline.stack.settings import StackSettings

# MLflow migrates an empty database on first start, and its import alone takes minutes on a
# loaded machine (2 cores, load 14: over 120 s).
START_TIMEOUT = 300.0


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def pid_of(s: StackSettings, name: str) -> int | None:
    """The pid of the stack's `name` server if it runs (and is ours: its argv names the stack)."""
    file = s.path(f"{name}.pid")
    try:
        pid = int(file.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (OSError, ValueError):
        return None
    return pid if str(s.root) in cmdline else None


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _healthy(url: str, ca: Path) -> bool:
    import httpx

    try:  # 401: up, asking for a login
        return httpx.get(url, timeout=5.0, verify=client_context(ca)).status_code < 500
    except httpx.HTTPError:
        return False


def _start(s: StackSettings, name: str, cmd: list[str], port: int, env: dict[str, str],
           health: str) -> None:  # fmt: skip
    if pid_of(s, name):
        return
    if port_open(s.host, port):
        raise UserInputError(
            f"{s.host}:{port} is taken by another process: set STACK_{name.upper()}_PORT"
        )
    log = s.path("logs", f"{name}.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                cwd=s.root, start_new_session=True)  # fmt: skip
    s.path(f"{name}.pid").write_text(str(proc.pid))
    deadline = time.monotonic() + START_TIMEOUT
    while not (port_open(s.host, port) and _healthy(health, s.tls.ca)):
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-1500:]
            stop(s, name)
            raise PipelineError(f"{name} did not start (log: {log}):\n{tail}")
        time.sleep(0.2)  # polling a port another process opens


def stop(s: StackSettings, name: str) -> None:
    """SIGTERM the server's process group, SIGKILL it if it is still there after 20 s."""
    pid = pid_of(s, name)
    if pid:
        for sig, wait in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                _reap(pid)
                time.sleep(0.1)
            if not Path(f"/proc/{pid}").exists():
                break
    s.path(f"{name}.pid").unlink(missing_ok=True)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # a child of this process (tests) would stay a zombie


def start_mlflow(s: StackSettings) -> None:
    """MLflow on PostgreSQL: runs and registry in `mlflow`, users in `mlflow_auth`."""
    artifacts = s.path("artifacts")
    artifacts.mkdir(parents=True, exist_ok=True)
    ini = s.path("basic_auth.ini")
    ini.write_text(
        "[mlflow]\n"
        f"default_permission = {s.default_permission}\n"
        f"database_uri = {postgres.uri(s, 'mlflow_auth')}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n",
        encoding="utf-8",
    )
    env = {
        **os.environ,
        "PGPASSWORD": s.db_password,
        "MLFLOW_AUTH_CONFIG_PATH": str(ini),
        "MLFLOW_AUTH_ADMIN_USERNAME": s.admin_username,
        "MLFLOW_AUTH_ADMIN_PASSWORD": s.admin_password,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": s.secret_key,
    }
    for leaked in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        env.pop(leaked, None)
    workers = os.environ.get("STACK_MLFLOW_WORKERS", "1")
    cmd = [_bin("mlflow"), "server", "--backend-store-uri", postgres.uri(s, "mlflow"),
           "--serve-artifacts", "--artifacts-destination", str(artifacts),
           "--host", s.host, "--port", str(s.mlflow_port), "--workers", workers,
           "--app-name", "basic-auth", "--uvicorn-opts", _uvicorn_tls(s)]  # fmt: skip
    _start(s, "mlflow", cmd, s.mlflow_port, env, f"{s.tracking_uri}/health")


def check_tls(s: StackSettings) -> None:
    """The certificate and key load as a pair (exit 2 naming them), before a server starts."""
    names = (
        ("STACK_TLS_CERT", "STACK_TLS_KEY")
        if not s.tls_own
        else ("the stack's certificate", "the stack's key")
    )
    TlsSettings(str(s.tls.cert), str(s.tls.key)).check(names)
    client_context(s.tls.ca)


def _uvicorn_tls(s: StackSettings) -> str:
    """MLflow's server runs uvicorn: its --ssl-* options, through `mlflow server --uvicorn-opts`."""
    return shlex.join(["--ssl-certfile", str(s.tls.cert), "--ssl-keyfile", str(s.tls.key)])


def add_users(s: StackSettings) -> list[str]:
    """Create the users file's logins in MLflow (the admin's API); those that were new."""
    import httpx

    created = []
    auth = (s.admin_username, s.admin_password)
    url = f"{s.tracking_uri}/api/2.0/mlflow/users/create"
    for name, password in s.users:
        reply = httpx.post(url, json={"username": name, "password": password}, auth=auth,
                           timeout=60.0, verify=client_context(s.tls.ca))  # fmt: skip
        if reply.status_code == 200:
            created.append(name)
        elif "already exists" not in reply.text and reply.status_code != 409:
            raise PipelineError(f"MLflow refused user {name!r}: {reply.status_code} {reply.text}")
    return created


def start_webdav(s: StackSettings) -> None:
    """WsgiDAV serving `.stack/dvc-remote` to the admin and the users file, basic auth."""
    remote = s.path("dvc-remote")
    remote.mkdir(parents=True, exist_ok=True)
    logins = {s.admin_username: {"password": s.admin_password}}
    logins.update({name: {"password": password} for name, password in s.users})
    config = {
        "host": s.host,
        "port": s.dav_port,
        "provider_mapping": {"/": str(remote)},
        "http_authenticator": {"accept_basic": True, "accept_digest": False},
        "simple_dc": {"user_mapping": {"*": logins}},
        "verbose": 1,
        "ssl_certificate": str(s.tls.cert),  # cheroot's builtin TLS adapter
        "ssl_private_key": str(s.tls.key),
        "logging": {"enable_loggers": []},
    }
    file = s.path("wsgidav.json")
    file.touch(mode=0o600)
    file.write_text(json.dumps(config, indent=1), encoding="utf-8")
    _start(s, "webdav", [_bin("wsgidav"), "--config", str(file)], s.dav_port, dict(os.environ),
           f"https://{s.host}:{s.dav_port}/")  # fmt: skip
