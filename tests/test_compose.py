"""The compose file (docs/deploy/) against the local stack it mirrors, and `stack certs`,
which makes its TLS pair. No container runtime runs here, so the file is checked, not
started: the versions, TLS, ports and secrets it must share with `make stack-up`."""

from __future__ import annotations

import re
import socket
import ssl
import threading
import tomllib
from pathlib import Path

import pytest
import yaml

from pipeline.stack.__main__ import main as stack_main
from pipeline.stack.settings import SECRETS

REPO_ROOT = Path(__file__).resolve().parent.parent
DEPLOY = REPO_ROOT / "docs" / "deploy"
VARIABLE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::?[-?][^}]*)?\}")


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text(encoding="utf-8"))


def team_pins() -> dict[str, str]:
    """`name==version` of the `team` extra (what `make stack-up` runs), extras stripped."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    pins = {}
    for requirement in project["project"]["optional-dependencies"]["team"]:
        name, sep, version = requirement.partition("==")
        if sep:
            pins[name.split("[")[0]] = version
    return pins


def test_the_containers_run_the_versions_the_local_stack_runs() -> None:
    services = compose()["services"]
    pins = team_pins()
    mlflow = services["mlflow"]
    assert mlflow["image"].endswith(f":v{pins['mlflow']}")
    command = mlflow["command"]
    assert f"'mlflow[auth]=={pins['mlflow']}'" in command
    assert f"psycopg2-binary=={pins['psycopg2-binary']}" in command
    assert f"wsgidav=={pins['wsgidav']}" in services["webdav"]["command"]


def test_mlflow_and_webdav_serve_tls_from_the_mounted_pair() -> None:
    data = compose()
    for name in ("mlflow", "webdav"):
        mounts = data["services"][name]["volumes"]
        assert any(m.startswith("${STACK_TLS_DIR") and m.endswith(":/tls:ro") for m in mounts)
    opts = re.search(r"--uvicorn-opts '([^']*)'", data["services"]["mlflow"]["command"])
    assert opts, "mlflow server without --uvicorn-opts"
    assert opts.group(1).split() == [
        "--ssl-certfile", "/tls/server.pem", "--ssl-keyfile", "/tls/server.key",
    ]  # fmt: skip
    dav = yaml.safe_load(data["configs"]["wsgidav"]["content"])
    assert (dav["ssl_certificate"], dav["ssl_private_key"]) == (
        "/tls/server.pem",
        "/tls/server.key",
    )


def test_ports_are_published_on_loopback_only() -> None:
    for name, service in compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port}"


def test_every_secret_comes_from_the_environment_and_is_in_the_example() -> None:
    text = (DEPLOY / "docker-compose.yml").read_text(encoding="utf-8")
    used = set(VARIABLE.findall(text))
    example = {
        line.partition("=")[0]
        for line in (DEPLOY / "stack.env.example").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    }
    assert used <= example, f"not in stack.env.example: {sorted(used - example)}"
    assert set(SECRETS) <= used  # the secrets `make stack-up` generates, asked for here too
    for name, service in compose()["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if re.search("PASSWORD|SECRET", key):
                assert VARIABLE.fullmatch(str(value)), f"{name}: {key} is a literal"


def test_stack_certs_makes_a_pair_a_client_verifies_by_host_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tls"
    assert stack_main(["certs", "--out", str(out), "--host", "mlflow.team.example"]) == 0
    assert capsys.readouterr().out.startswith("made ")
    assert out.joinpath("server.key").stat().st_mode & 0o077 == 0
    assert stack_main(["certs", "--out", str(out), "--host", "mlflow.team.example"]) == 0
    assert capsys.readouterr().out.startswith("kept ")

    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(out / "server.pem", out / "server.key")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with server.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"ok")
        except ssl.SSLError:
            pass  # the refused handshake below

    def handshake(name: str) -> bytes:
        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        client = ssl.create_default_context(cafile=str(out / "ca.pem"))
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
                client.wrap_socket(raw, server_hostname=name) as tls,
            ):
                return tls.recv(2)
        finally:
            thread.join(timeout=10)

    try:
        assert handshake("mlflow.team.example") == b"ok"
        assert handshake("localhost") == b"ok"
        with pytest.raises(ssl.SSLCertVerificationError):
            handshake("other.example")
    finally:
        listener.close()

    # A name the pair does not cover: made again (for the names asked this time).
    assert stack_main(["certs", "--out", str(out), "--host", "dav.team.example"]) == 0
    assert capsys.readouterr().out.startswith("made ")
