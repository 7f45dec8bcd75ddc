"""The local stack's TLS files: a private CA and a server certificate it signs for the
stack's host (127.0.0.1 and localhost), made with `cryptography` (no openssl CLI) in
`.stack/tls/` when absent or about to expire. Clients trust `ca.pem` and nothing else."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.io.atomic import write_durably

if TYPE_CHECKING:  # cryptography loads only when a certificate is made or read
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

CA_DAYS = 3650
SERVER_DAYS = 397  # what browsers accept for a server certificate
RENEW_DAYS = 30  # a certificate closer than this to its end is made again


@dataclass(frozen=True)
class TlsFiles:
    """The PEM files the servers and their clients use."""

    ca: Path  # the CA certificate clients verify against (its key is not kept)
    cert: Path  # the servers' certificate, signed by the CA
    key: Path  # its private key (mode 600)


def files(directory: Path) -> TlsFiles:
    return TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")


def ensure(directory: Path, hosts: tuple[str, ...]) -> tuple[TlsFiles, bool]:
    """The CA and server pair under `directory`, made when missing, expiring or not naming
    every host; whether they were made now (clients must then trust the new CA)."""
    found = files(directory)
    if _current(found, hosts):
        return found, False
    make(found, hosts)
    return found, True


def _current(found: TlsFiles, hosts: tuple[str, ...]) -> bool:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    if not (found.ca.exists() and found.cert.exists() and found.key.exists()):
        return False
    try:
        cert = x509.load_pem_x509_certificate(found.cert.read_bytes())
        ca = x509.load_pem_x509_certificate(found.ca.read_bytes())
        key = load_pem_private_key(found.key.read_bytes(), password=None)
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False  # a half-written or foreign set (a crash between writes): make it again
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=RENEW_DAYS)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return (
        key.public_key() == cert.public_key()
        and cert.not_valid_after_utc > soon
        and all(_san(h) in names for h in hosts)
    )


def _san(host: str) -> x509.GeneralName:
    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def make(out: TlsFiles, hosts: tuple[str, ...]) -> None:
    """A new CA and a server certificate for `hosts`; the CA's key is dropped after signing,
    so a leaked stack directory cannot mint certificates for other names."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)  # clock skew between processes
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "prompt-pipeline stack CA")])
    ca = (
        _builder(ca_name, ca_name, ca_key.public_key(), now, CA_DAYS)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    server = (
        _builder(subject, ca_name, key.public_key(), now, SERVER_DAYS)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([_san(h) for h in hosts]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # A crash between these writes leaves a set that _current() rejects and ensure() remakes.
    write_durably(out.key, key_pem, mode=0o600)
    write_durably(out.cert, server.public_bytes(pem))
    write_durably(out.ca, ca.public_bytes(pem))


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey,
    now: dt.datetime, days: int,
) -> x509.CertificateBuilder:  # fmt: skip
    from cryptography import x509

    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=days))
    )


def _usage(cert_sign: bool) -> x509.KeyUsage:
    from cryptography import x509

    return x509.KeyUsage(
        digital_signature=not cert_sign, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign,
        crl_sign=cert_sign, encipher_only=False, decipher_only=False,
    )  # fmt: skip
