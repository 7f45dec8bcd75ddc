"""The team stack's settings and `tracking=server` without servers: credentials from the
environment or the untracked file, the users file, and the URI from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import compose, load_params
from pipeline.errors import UserInputError
from pipeline.service.settings import ServicePaths
from pipeline.stack import settings
from pipeline.tracking import TrackingSettings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    names = ("STACK_ADMIN_PASSWORD", "STACK_DB_PASSWORD", "STACK_SECRET_KEY", "STACK_USERS_FILE")
    tls = ("STACK_TLS_CA", "STACK_TLS_CERT", "STACK_TLS_KEY")
    mlflow = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_SERVER_CERT_PATH")
    for name in (*names, *tls, *mlflow, "STACK_PG_PORT", "STACK_DIR"):
        monkeypatch.delenv(name, raising=False)


def test_secrets_are_generated_once_into_an_untracked_file(tmp_path: Path) -> None:
    first = settings.load(tmp_path / "stack", create=True)
    again = settings.load(tmp_path / "stack")
    assert first.admin_password and first.db_password and first.secret_key
    assert (again.admin_password, again.db_password) == (first.admin_password, first.db_password)
    file = tmp_path / "stack" / settings.CREDENTIALS
    assert file.stat().st_mode & 0o777 == 0o600
    assert settings.load(tmp_path / "elsewhere").admin_password == ""  # not created on read


def test_the_environment_wins_over_the_file(tmp_path: Path, monkeypatch) -> None:
    settings.load(tmp_path, create=True)
    monkeypatch.setenv("STACK_ADMIN_PASSWORD", "from-the-environment")
    monkeypatch.setenv("STACK_PG_PORT", "6543")
    s = settings.load(tmp_path)
    assert (s.admin_password, s.pg_port) == ("from-the-environment", 6543)


@pytest.mark.parametrize(
    ("text", "message"),
    [("alice\n", r"users\.txt:1: expected name:password"),
     ("# team\nbob:short\n", r"users\.txt:2: .*at least 12 characters")],
)  # fmt: skip
def test_a_bad_users_file_names_the_line(tmp_path: Path, monkeypatch, text, message) -> None:
    (tmp_path / "users.txt").write_text(text)
    monkeypatch.setenv("STACK_USERS_FILE", str(tmp_path / "users.txt"))
    with pytest.raises(UserInputError, match=message):
        settings.load(tmp_path)


def test_a_bad_port_is_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("STACK_PG_PORT", "70000")
    with pytest.raises(UserInputError, match=r"STACK_PG_PORT='70000': expected a port"):
        settings.load(tmp_path)


def test_tracking_server_takes_the_uri_from_the_environment(tmp_path: Path, monkeypatch) -> None:
    cfg = compose(["tracking=server"])
    tracking = TrackingSettings.from_cfg(cfg.tracking)
    with pytest.raises(UserInputError, match=r"\$MLFLOW_TRACKING_URI is not set"):
        tracking.resolved_uri(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking.resolved_uri(tmp_path) == "http://127.0.0.1:5000"
    assert tracking.artifact_location(tmp_path) is None  # the server stores artifacts
    # No local artifact store is named after the `env:` placeholder.
    assert ServicePaths.from_cfg({}, dict(cfg.tracking)).mlruns == Path("mlruns")


def test_a_missing_ca_file_for_an_https_server_is_named(tmp_path: Path, monkeypatch) -> None:
    tracking = TrackingSettings.from_cfg(compose(["tracking=server"]).tracking)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://127.0.0.1:5000")
    monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(tmp_path / "gone" / "ca.pem"))
    with pytest.raises(UserInputError, match=rf"SERVER_CERT_PATH {tmp_path}/gone/ca.pem: no such"):
        tracking.resolved_uri(tmp_path)
    (tmp_path / "ca.pem").write_text("a CA", encoding="utf-8")
    monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(tmp_path / "ca.pem"))
    assert tracking.resolved_uri(tmp_path) == "https://127.0.0.1:5000"


def test_tracking_server_is_an_override_of_params(repo_root: Path) -> None:
    cfg = load_params(repo_root / "params.yaml", ["tracking=server"])
    assert cfg.tracking.uri == "env:MLFLOW_TRACKING_URI"


def test_tls_files_are_the_stacks_own_unless_all_three_are_given(
    tmp_path: Path, monkeypatch
) -> None:
    own = settings.load(tmp_path)
    assert own.tls_own and own.tls.ca == tmp_path.resolve() / "tls" / "ca.pem"
    assert own.tracking_uri.startswith("https://") and own.remote_url.startswith("webdavs://")
    monkeypatch.setenv("STACK_TLS_CA", "/etc/team/ca.pem")
    with pytest.raises(UserInputError, match="STACK_TLS_CA, STACK_TLS_CERT and STACK_TLS_KEY"):
        settings.load(tmp_path)
    monkeypatch.setenv("STACK_TLS_CERT", "/etc/team/server.pem")
    monkeypatch.setenv("STACK_TLS_KEY", "/etc/team/server.key")
    given = settings.load(tmp_path)
    assert not given.tls_own and given.tls.key == Path("/etc/team/server.key")
    # A relative path is made absolute: `stack env` prints it for clients elsewhere.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STACK_TLS_CA", "team/ca.pem")
    assert settings.load(tmp_path).tls.ca == tmp_path.resolve() / "team" / "ca.pem"


def test_env_exports_the_ca_for_mlflows_client(tmp_path: Path, capsys) -> None:
    from pipeline.stack.__main__ import env

    env(settings.load(tmp_path, create=True), None)
    printed = capsys.readouterr().out
    assert (
        f"export MLFLOW_TRACKING_SERVER_CERT_PATH={tmp_path.resolve() / 'tls' / 'ca.pem'}"
        in printed
    )
