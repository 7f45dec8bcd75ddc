"""TLS for our servers and clients: the `serve.tls` settings (a PEM certificate chain and
its private key; both empty = plain HTTP), checked before a server starts, and the
verifying client context for a private CA (docs/serving.md#tls, docs/team.md)."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import UserInputError


@dataclass(frozen=True)
class TlsSettings:
    """conf/serve `tls:`: where the server's certificate chain and private key are."""

    cert: str = ""  # PEM: the server's certificate, then any intermediates
    key: str = ""  # PEM: its private key (unencrypted; keep the file mode 600)

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any] | None) -> TlsSettings:
        cfg = cfg or {}
        if not isinstance(cfg, Mapping):
            raise UserInputError(f"serve.tls: {cfg!r}; expected a mapping with cert and key")
        unknown = sorted(set(cfg) - {"cert", "key"})
        if unknown:
            raise UserInputError(f"serve.tls: unknown key(s) {unknown}; expected cert and key")
        return cls(cert=str(cfg.get("cert") or ""), key=str(cfg.get("key") or ""))

    @property
    def enabled(self) -> bool:
        return bool(self.cert or self.key)

    def under(self, root: Path) -> TlsSettings:
        """Relative paths resolved against the project root, as the other paths are."""
        return TlsSettings(*(str(root / p) if p else "" for p in (self.cert, self.key)))

    def check(self, names: tuple[str, str] = ("serve.tls.cert", "serve.tls.key")) -> None:
        """Fail (exit 2) unless both files are readable PEM and the key matches the cert;
        `names` are the settings the paths came from, for the message.

        Checked before uvicorn starts: its own failure is a traceback from deep in a worker."""
        if not self.enabled:
            return
        if not (self.cert and self.key):
            missing = names[1] if self.cert else names[0]
            raise UserInputError(f"{missing} is empty; set both {' and '.join(names)} or neither")
        for name, path in zip(names, (self.cert, self.key), strict=True):
            try:
                Path(path).open("rb").close()
            except OSError as exc:
                raise UserInputError(f"{name} {path}: cannot read it ({exc.strerror})") from exc
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:  # an encrypted key would make OpenSSL ask for its passphrase on the terminal
            context.load_cert_chain(
                self.cert, self.key, password=lambda: _encrypted(names[1], self.key)
            )
        except ssl.SSLError as exc:
            raise UserInputError(
                f"{names[0]} {self.cert} and {names[1]} {self.key} are not a PEM certificate "
                f"chain and its private key ({exc.reason or exc})"
            ) from exc

    def uvicorn_options(self) -> dict[str, str]:
        """uvicorn.run's keyword arguments for these files (none for plain HTTP)."""
        return {"ssl_certfile": self.cert, "ssl_keyfile": self.key} if self.enabled else {}


def _encrypted(name: str, path: str) -> str:
    """load_cert_chain's passphrase callback: OpenSSL would otherwise prompt on the terminal."""
    raise UserInputError(
        f"{name} {path}: the private key is encrypted; the server reads an unencrypted PEM key "
        "(keep the file mode 600)"
    )


def client_context(ca: str | Path | None = None) -> ssl.SSLContext:
    """A verifying client context: trusts `ca` (a PEM bundle) only, or the system's roots.

    httpx takes it as `verify=`; hostname checking stays on either way."""
    if ca is None:
        return ssl.create_default_context()
    try:
        return ssl.create_default_context(cafile=str(ca))
    except (OSError, ssl.SSLError) as exc:
        raise UserInputError(f"{ca}: not a readable PEM CA certificate ({exc})") from exc
