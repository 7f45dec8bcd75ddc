"""Debian's PostgreSQL, a cluster in `.stack/pg` on a loopback port: install, init, start,
stop. PostgreSQL refuses to run as root, so as root the cluster belongs to `postgres`."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from pipeline.errors import PipelineError, UserInputError
from pipeline.stack.settings import StackSettings

DB_USER = "mlflow"
DATABASES = ("mlflow", "mlflow_auth")  # runs and registry; MLflow's basic-auth users
OWNER = "postgres"  # the system user Debian's package creates


def bindir() -> Path | None:
    """The newest installed PostgreSQL's bin directory, if any."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=_version)
    return found[-1].parent if found else None


def _version(path: Path) -> float:
    try:
        return float(path.parent.parent.name)
    except ValueError:
        return 0.0


def ensure_installed() -> Path:
    """PostgreSQL's bin directory, installing Debian's package first when it is missing."""
    found = bindir()
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise UserInputError(
            "PostgreSQL is not installed: run `apt-get install postgresql` as root (Debian)"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "postgresql"]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise PipelineError(f"{' '.join(cmd)} failed: {done.stderr.strip()[-500:]}")
    found = bindir()
    if not found:
        raise PipelineError("apt-get installed postgresql but no /usr/lib/postgresql/*/bin")
    return found


def _as_owner(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", OWNER, "--", *cmd] if os.geteuid() == 0 else cmd


def _run(cmd: list[str], what: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(_as_owner(cmd), capture_output=True, text=True)
    if done.returncode != 0:
        raise PipelineError(f"{what} failed: {(done.stderr or done.stdout).strip()[-800:]}")
    return done


def _give(path: Path) -> None:
    """Hand a path to the cluster's owner (as root); check the owner can reach it."""
    if os.geteuid() != 0:
        return
    shutil.chown(path, OWNER, OWNER)
    probe = subprocess.run(["runuser", "-u", OWNER, "--", "test", "-w", str(path)])
    if probe.returncode != 0:
        raise UserInputError(
            f"{path}: the {OWNER} user cannot reach it; put the stack (STACK_DIR) under "
            "directories every user may enter (mode 755)"
        )


def data_dir(s: StackSettings) -> Path:
    return s.path("pg")


def running(s: StackSettings, bin_dir: Path) -> bool:
    """Whether the stack's cluster is up (pg_ctl status)."""
    if not (data_dir(s) / "PG_VERSION").exists():
        return False
    cmd = _as_owner([str(bin_dir / "pg_ctl"), "status", "-D", str(data_dir(s))])
    return subprocess.run(cmd, capture_output=True).returncode == 0


def init(s: StackSettings, bin_dir: Path) -> None:
    """Create the cluster once: superuser `mlflow` with the stack's database password."""
    pg = data_dir(s)
    if (pg / "PG_VERSION").exists():
        return
    if pg.exists() and any(pg.iterdir()):
        raise UserInputError(f"{pg}: not empty and not a PostgreSQL cluster; move it away")
    pg.mkdir(parents=True, exist_ok=True, mode=0o700)
    _give(pg)
    pwfile = s.path("pg.pw")
    pwfile.write_text(s.db_password + "\n", encoding="utf-8")
    try:
        _give(pwfile)
        _run([str(bin_dir / "initdb"), "-D", str(pg), "-U", DB_USER, f"--pwfile={pwfile}",
              "-A", "scram-sha-256", "-E", "UTF8", "--no-locale"], "initdb")  # fmt: skip
    finally:
        pwfile.unlink(missing_ok=True)


def start(s: StackSettings, bin_dir: Path) -> None:
    """Start the cluster on the loopback port (waits until it accepts connections)."""
    log = s.path("logs", "postgres.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    log.touch()
    _give(log)
    options = f"-c listen_addresses={s.host} -p {s.pg_port} -k {data_dir(s)}"
    _run([str(bin_dir / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(data_dir(s)),
          "-l", str(log), "-o", options], f"pg_ctl start (log: {log})")  # fmt: skip
    _create_databases(s)


def _create_databases(s: StackSettings) -> None:
    import psycopg2

    con = psycopg2.connect(host=s.host, port=s.pg_port, user=DB_USER,
                           password=s.db_password, dbname="postgres")  # fmt: skip
    try:
        con.autocommit = True
        with con.cursor() as cur:
            for name in DATABASES:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        con.close()


def stop(s: StackSettings, bin_dir: Path) -> None:
    """Stop the cluster (fast shutdown: open sessions are rolled back)."""
    if running(s, bin_dir):
        _run([str(bin_dir / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(data_dir(s))],
             "pg_ctl stop")  # fmt: skip


def uri(s: StackSettings, database: str) -> str:
    """The SQLAlchemy URI of a database; the password travels in PGPASSWORD, not argv."""
    return f"postgresql+psycopg2://{DB_USER}@{s.host}:{s.pg_port}/{database}"
