"""`pipeline serve` over TLS (`serve.tls.cert`/`key`): a real uvicorn on loopback with a
certificate from a private CA; a client that trusts the CA gets through, one that trusts
only the system's roots is refused; a bad file is exit 2 before anything listens."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from helpers.serve import build_index, build_store, start_uvicorn, stop_process, write_params

from pipeline.errors import UserInputError
from pipeline.integrations.source import HttpSource
from pipeline.service.keys import create_key
from pipeline.service.tls import TlsSettings, client_context
from pipeline.stack import certs

REPO_ROOT = Path(__file__).resolve().parent.parent


def tls_params(params: Path, cert: Path | str, key: Path | str) -> Path:
    """The test's params.yaml with a `serve.tls` section, as conf/serve/default.yaml has."""
    data = yaml.safe_load(params.read_text(encoding="utf-8"))
    data["serve"]["tls"] = {"cert": str(cert), "key": str(key)}
    params.write_text(yaml.safe_dump(data), encoding="utf-8")
    return params


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> certs.TlsFiles:
    """A CA and a server certificate for 127.0.0.1 and localhost, as `make stack-up` makes."""
    found, made = certs.ensure(tmp_path_factory.mktemp("tls"), ("127.0.0.1", "localhost"))
    assert made
    return found


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, pair: certs.TlsFiles) -> Iterator[tuple]:
    root = tmp_path_factory.mktemp("serve-tls")
    config = build_store(root)
    build_index(config)
    params = tls_params(write_params(config, root), pair.cert, pair.key)
    key = create_key(config.paths.service_db, "reader", "tls-app")[0]
    cmd = [sys.executable, "-m", "pipeline", "serve", "--params", str(params), "--port", "0"]
    proc, url, _ = start_uvicorn(cmd, root, root / "server.log", "the TLS server", timeout=120)
    try:
        yield url, key
    finally:
        stop_process(proc)


@pytest.mark.slow  # starts a server process
def test_a_client_with_the_ca_gets_through_and_one_without_it_is_refused(
    server, pair: certs.TlsFiles
) -> None:
    url, _ = server
    assert url.startswith("https://127.0.0.1:")
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{url}/health", verify=client_context(), timeout=30)
    reply = httpx.get(f"{url}/health", verify=client_context(pair.ca), timeout=30)
    assert reply.status_code == 200 and reply.json()["status"] == "ok"
    # The server presents the configured certificate, not some other one the CA signed.
    port = url.rsplit(":", 1)[1]
    with (
        socket.create_connection(("127.0.0.1", int(port)), timeout=30) as raw,
        client_context(pair.ca).wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        presented = tls.getpeercert(binary_form=True)
    assert presented == ssl.PEM_cert_to_DER_cert(pair.cert.read_text())
    # The certificate names 127.0.0.1 and localhost: verification checks the name too.
    assert httpx.get(f"https://localhost:{port}/health", verify=client_context(pair.ca)).is_success
    # Plain HTTP is not served on the TLS port.
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=30)


@pytest.mark.slow  # starts a server process
def test_the_retrievers_http_source_verifies_against_the_ca(server, pair) -> None:
    url, key = server
    hits = HttpSource(url, key, ca=pair.ca).hits("reset my password", 3, "keyword", [])
    assert hits and hits[0]["id"] == "a1"
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        HttpSource(url, key).hits("reset my password", 3, "keyword", [])


@pytest.mark.slow  # a CLI process
def test_an_untrusted_tracking_server_is_exit_2_saying_which_ca_to_give(
    server, tmp_path: Path
) -> None:
    """MLflow's client against an https server whose CA it was not given: the handshake
    fails before any HTTP (so this server stands for the team's MLflow), and the command
    says what to export instead of MLflow's traceback."""
    url, _ = server
    env = {**os.environ, "MLFLOW_TRACKING_URI": url, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    env.pop("MLFLOW_TRACKING_SERVER_CERT_PATH", None)
    cmd = [sys.executable, "-m", "pipeline", "runs", "--root", str(REPO_ROOT),
           "-S", "tracking=server"]  # fmt: skip
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    assert f"error: {url}: its TLS certificate did not verify" in done.stderr
    assert "MLFLOW_TRACKING_SERVER_CERT_PATH" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow  # CLI processes
@pytest.mark.parametrize("missing", ["cert", "key"])
def test_a_missing_file_is_exit_2_naming_it(tmp_path: Path, pair, missing: str) -> None:
    config = build_store(tmp_path)
    files = {"cert": str(pair.cert), "key": str(pair.key), missing: f"nope/{missing}.pem"}
    params = tls_params(write_params(config, tmp_path), files["cert"], files["key"])
    cmd = [sys.executable, "-m", "pipeline", "serve", "--params", str(params), "--port", "0"]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    # The setting and the path, relative to the project root (the working directory here).
    expected = f"serve.tls.{missing} nope/{missing}.pem: cannot read it (No such file"
    assert expected in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "Uvicorn running" not in done.stderr


@pytest.mark.parametrize(
    ("cert", "key", "message"),
    [
        ("cert", "", "serve.tls.key is empty"),
        ("", "key", "serve.tls.cert is empty"),
        ("cert", "ca", "are not a PEM certificate chain and its private key"),  # wrong file
        ("ca", "key", "are not a PEM certificate chain and its private key"),  # key mismatch
    ],
)
def test_a_bad_pair_is_a_clear_error(pair, cert: str, key: str, message: str) -> None:
    paths = {"cert": str(pair.cert), "key": str(pair.key), "ca": str(pair.ca), "": ""}
    with pytest.raises(UserInputError, match=message):
        TlsSettings(paths[cert], paths[key]).check()


def test_an_encrypted_key_is_refused_without_asking_for_a_passphrase(tmp_path: Path, pair) -> None:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(pair.key.read_bytes(), password=None)
    locked = tmp_path / "locked.key"
    locked.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    with pytest.raises(UserInputError, match=rf"serve.tls.key {locked}: .* encrypted"):
        TlsSettings(str(pair.cert), str(locked)).check()
    # The stack names its own settings.
    with pytest.raises(UserInputError, match=rf"STACK_TLS_KEY {locked}: .* encrypted"):
        TlsSettings(str(pair.cert), str(locked)).check(("STACK_TLS_CERT", "STACK_TLS_KEY"))


def test_a_tls_section_that_is_not_cert_and_key_is_refused() -> None:
    with pytest.raises(UserInputError, match=r"unknown key\(s\) \['certificate'\]"):
        TlsSettings.from_cfg({"certificate": "a.pem"})
    with pytest.raises(UserInputError, match=r"serve\.tls: 'on'; expected a mapping"):
        TlsSettings.from_cfg("on")  # type: ignore[arg-type]


def test_relative_paths_are_under_the_project_root(tmp_path: Path) -> None:
    tls = TlsSettings("tls/server.pem", "/etc/abs.key").under(tmp_path)
    assert tls == TlsSettings(str(tmp_path / "tls/server.pem"), "/etc/abs.key")
    assert TlsSettings().uvicorn_options() == {} and not TlsSettings().enabled


def test_the_stack_pair_is_made_once_and_again_for_a_new_host(tmp_path: Path) -> None:
    first, made = certs.ensure(tmp_path, ("127.0.0.1", "localhost"))
    again, made_again = certs.ensure(tmp_path, ("127.0.0.1",))
    assert made and not made_again and again == first
    assert first.key.stat().st_mode & 0o077 == 0
    ca = first.ca.read_bytes()
    first.cert.write_bytes(b"half-written")  # a crash between writes
    _, remade = certs.ensure(tmp_path, ("127.0.0.1", "localhost"))
    assert remade and first.ca.read_bytes() != ca
    _, for_new_host = certs.ensure(tmp_path, ("127.0.0.1", "stack.example"))
    assert for_new_host
    TlsSettings(str(first.cert), str(first.key)).check()
