"""Where the stack lives, its ports and its credentials: environment first, then the
untracked `.stack/credentials.env` the first `up` writes (never anything from git)."""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import UserInputError
from pipeline.stack.certs import TlsFiles, files

CREDENTIALS = "credentials.env"
# Generated once, kept in the credentials file; an environment variable of the same name wins.
SECRETS = ("STACK_ADMIN_PASSWORD", "STACK_DB_PASSWORD", "STACK_SECRET_KEY")
_USER = re.compile(r"^[A-Za-z0-9_.@-]+$")


@dataclass(frozen=True)
class StackSettings:
    """One stack: its directory, the loopback host and ports, and the logins it serves."""

    root: Path
    host: str
    pg_port: int
    mlflow_port: int
    dav_port: int
    admin_username: str
    admin_password: str
    db_password: str
    secret_key: str  # MLflow's Flask key for CSRF tokens (MLFLOW_FLASK_SERVER_SECRET_KEY)
    default_permission: str
    users: tuple[tuple[str, str], ...]  # team members, (name, password), from the users file
    tls: TlsFiles  # MLflow's and WebDAV's certificate and key, and the CA clients trust
    tls_own: bool  # the stack makes them (.stack/tls/), or STACK_TLS_* name the team's own

    @property
    def tracking_uri(self) -> str:
        return f"https://{self.host}:{self.mlflow_port}"

    @property
    def remote_url(self) -> str:
        return f"webdavs://{self.host}:{self.dav_port}/"

    @property
    def tls_hosts(self) -> tuple[str, ...]:
        """The names the stack's own certificate covers: loopback and the bind address."""
        return tuple(dict.fromkeys((self.host, "127.0.0.1", "localhost")))

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)


def _port(name: str, default: int) -> int:
    raw = os.environ.get(name, str(default))
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise UserInputError(f"{name}={raw!r}: expected a port number (1-65535)")
    return int(raw)


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a credentials file (blank lines and # comments skipped)."""
    values: dict[str, str] = {}
    if not path.exists():
        return values
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise UserInputError(f"{path}:{number}: expected KEY=VALUE")
        values[key.strip()] = value.strip()
    return values


def read_users(path: Path) -> tuple[tuple[str, str], ...]:
    """`name:password` lines of the users file: the team's MLflow and WebDAV logins."""
    if not path.exists():
        return ()
    users = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, password = line.partition(":")
        if not sep or not _USER.match(name) or len(password) < 12:
            raise UserInputError(
                f"{path}:{number}: expected name:password (name of letters, digits, ._@-; "
                "a password of at least 12 characters)"
            )
        users.append((name, password))
    return tuple(users)


def load(root: Path | None = None, create: bool = False) -> StackSettings:
    """The stack's settings; with `create`, generate the missing secrets into the file."""
    root = Path(root or os.environ.get("STACK_DIR") or ".stack").resolve()
    file = root / CREDENTIALS
    stored = read_env_file(file)
    missing = [k for k in SECRETS if k not in os.environ and k not in stored]
    if missing and create:
        root.mkdir(parents=True, exist_ok=True)
        stored.update({k: secrets.token_urlsafe(18) for k in missing})
        lines = ["# Written by `python -m pipeline.stack up`; keep it out of git (.gitignore)."]
        lines += [f"{k}={v}" for k, v in sorted(stored.items())]
        file.touch(mode=0o600)
        file.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def value(key: str, default: str = "") -> str:
        return os.environ.get(key) or stored.get(key) or default

    permission = value("STACK_DEFAULT_PERMISSION", "EDIT").upper()
    if permission not in {"READ", "USE", "EDIT", "MANAGE", "NO_PERMISSIONS"}:
        raise UserInputError(f"STACK_DEFAULT_PERMISSION={permission!r}: READ, EDIT or MANAGE")
    users_file = Path(value("STACK_USERS_FILE", str(root / "users.txt")))
    given = {k: value(f"STACK_TLS_{k.upper()}") for k in ("ca", "cert", "key")}
    if any(given.values()) and not all(given.values()):
        raise UserInputError("STACK_TLS_CA, STACK_TLS_CERT and STACK_TLS_KEY: set all or none")
    # Absolute: `stack env` and `stack remote` hand these paths to clients in other directories.
    tls = (
        TlsFiles(**{k: Path(v).expanduser().resolve() for k, v in given.items()})
        if all(given.values())
        else None
    )
    return StackSettings(
        root=root,
        host=value("STACK_HOST", "127.0.0.1"),
        pg_port=_port("STACK_PG_PORT", 5433),
        mlflow_port=_port("STACK_MLFLOW_PORT", 5000),
        dav_port=_port("STACK_DAV_PORT", 8090),
        admin_username=value("STACK_ADMIN_USERNAME", "admin"),
        admin_password=value("STACK_ADMIN_PASSWORD"),
        db_password=value("STACK_DB_PASSWORD"),
        secret_key=value("STACK_SECRET_KEY"),
        default_permission=permission,
        users=read_users(users_file),
        tls=tls or files(root / "tls"),
        tls_own=tls is None,
    )
