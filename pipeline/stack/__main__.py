"""`python -m pipeline.stack up|down|status|env|remote|certs` (`make stack-up`/`stack-down`)."""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pipeline.errors import PipelineError, UserInputError
from pipeline.stack import certs, postgres, services, settings
from pipeline.stack.settings import StackSettings


def up(s: StackSettings) -> None:
    """Start whatever is not running yet (idempotent)."""
    started = time.monotonic()
    bin_dir = postgres.ensure_installed()
    postgres.init(s, bin_dir)
    if not postgres.running(s, bin_dir):
        postgres.start(s, bin_dir)
    if s.tls_own and certs.ensure(s.path("tls"), s.tls_hosts)[1]:
        for name in ("mlflow", "webdav"):  # still serving a certificate clients no longer trust
            services.stop(s, name)
    services.check_tls(s)
    services.start_mlflow(s)
    new = services.add_users(s)
    services.start_webdav(s)
    print(f"stack up in {time.monotonic() - started:.1f} s ({s.root})")
    status(s)
    if new:
        print(f"MLflow users added: {', '.join(new)}")
    print(f"TLS: clients verify against {s.tls.ca}")
    print(f'client settings: eval "$({sys.executable} -m pipeline.stack env)"')


def down(s: StackSettings) -> None:
    """Stop what runs; the data (cluster, artifacts, remote) stays for the next `up`."""
    services.stop(s, "webdav")
    services.stop(s, "mlflow")
    found = postgres.bindir()
    if found:
        postgres.stop(s, found)
    print(f"stack down ({s.root}; data kept)")


def status(s: StackSettings) -> bool:
    """One line per server; whether all three run."""
    found = postgres.bindir()
    rows = [
        ("postgres", bool(found and postgres.running(s, found)), f"{s.host}:{s.pg_port}"),
        ("mlflow", bool(services.pid_of(s, "mlflow")), s.tracking_uri),
        ("webdav", bool(services.pid_of(s, "webdav")), s.remote_url),
    ]
    for name, up_, where in rows:
        print(f"{name:9} {'running' if up_ else 'stopped':8} {where}")
    return all(up_ for _, up_, _ in rows)


def env(s: StackSettings, user: str | None) -> None:
    """Shell exports for a client: the tracking URI, a login (the admin's by default) and
    the CA that MLflow's client verifies the server's certificate against."""
    logins = dict(s.users)
    if user and user != s.admin_username and user not in logins:
        raise UserInputError(f"no user {user!r} in the users file")
    name = user or s.admin_username
    password = logins.get(name, s.admin_password) if name != s.admin_username else s.admin_password
    for key, value in (("MLFLOW_TRACKING_URI", s.tracking_uri),
                       ("MLFLOW_TRACKING_USERNAME", name),
                       ("MLFLOW_TRACKING_PASSWORD", password),
                       ("MLFLOW_TRACKING_SERVER_CERT_PATH", str(s.tls.ca))):  # fmt: skip
        print(f"export {key}={shlex.quote(value)}")


def remote(s: StackSettings, name: str, user: str | None) -> None:
    """Make the stack's WebDAV server this repository's default DVC remote (login --local;
    `ssl_verify` names the stack's CA, a path on this machine, so it is local too)."""
    logins = {s.admin_username: s.admin_password, **dict(s.users)}
    login = user or s.admin_username
    if login not in logins:
        raise UserInputError(f"no user {login!r} in the users file")
    for args in (["remote", "add", "--local", "-d", "-f", name, s.remote_url],
                 ["remote", "modify", "--local", name, "user", login],
                 ["remote", "modify", "--local", name, "password", logins[login]],
                 ["remote", "modify", "--local", name, "ssl_verify", str(s.tls.ca)]):  # fmt: skip
        done = subprocess.run(["dvc", *args], capture_output=True, text=True)
        if done.returncode != 0:
            raise PipelineError(f"dvc {args[0]} {args[1]} failed: {done.stderr.strip()}")
    print(f"dvc remote {name!r} -> {s.remote_url} (login and CA in .dvc/config.local)")


def make_certs(s: StackSettings, out: str | None, hosts: Sequence[str]) -> None:
    """A private CA and a server certificate it signs, for the compose file's servers or the
    team's own: made in `out` (the stack's own TLS directory by default) when absent, about to
    expire or not covering `hosts`; kept otherwise."""
    names = tuple(dict.fromkeys((*hosts, *s.tls_hosts)))
    found, made = certs.ensure(Path(out).resolve() if out else s.path("tls"), names)
    print(f"{'made' if made else 'kept'} {found.cert} for {', '.join(names)}")
    print(f"clients verify against {found.ca}; the servers read {found.cert} and {found.key}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.stack", description=__doc__)
    parser.add_argument("action", choices=["up", "down", "status", "env", "remote", "certs"])
    parser.add_argument("--user", help="env/remote: log in as this user of the users file")
    parser.add_argument("--name", default="team", help="remote: the DVC remote's name")
    parser.add_argument("--out", help="certs: the directory for ca.pem, server.pem, server.key")
    parser.add_argument(
        "--host", action="append", default=[],
        help="certs: a name the server certificate covers besides loopback (repeatable)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        s = settings.load(create=args.action == "up")
        if args.action in {"up", "env", "remote"} and not s.admin_password:
            raise UserInputError(f"no credentials in {s.root}: run `make stack-up` first")
        if args.action == "up":
            up(s)
        elif args.action == "down":
            down(s)
        elif args.action == "status":
            return 0 if status(s) else 3
        elif args.action == "env":
            env(s, args.user)
        elif args.action == "certs":
            make_certs(s, args.out, args.host)
        else:
            remote(s, args.name, args.user)
    except PipelineError as exc:
        print(f"stack: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
