"""Throw-away TLS material: a private CA and a loopback server certificate, in a private temp dir.

Made at start-up with ``cryptography`` (installed with Airflow), so HTTPS tests need no network,
no system trust store and no extra package. Only the CA's PEM is meant to leave the directory
(clients trust it via the connection extra ``ca_bundle`` or ``SSL_CERT_FILE``).
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import ssl
import tempfile
from datetime import datetime, timedelta, timezone

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


class SandboxTLS:
    """A CA + server certificate for ``names`` written to a 0700 temp dir; ``cleanup`` removes it."""

    def __init__(self, names: tuple[str, ...] = LOOPBACK_NAMES) -> None:
        now = datetime.now(timezone.utc)
        not_before, not_after = now - timedelta(hours=1), now + timedelta(days=7)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Eshopbox sandbox throw-away CA")])
        ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ca_ski, critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        unique = list(dict.fromkeys(names))
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, unique[0])]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([_san(n) for n in unique]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        self.dir = tempfile.mkdtemp(prefix="eshopbox-sandbox-tls-")  # mode 0700
        self.ca_bundle = os.path.join(self.dir, "ca.pem")
        self.certfile = os.path.join(self.dir, "server.pem")
        self.keyfile = os.path.join(self.dir, "server.key")
        pem = serialization.Encoding.PEM
        _write(self.ca_bundle, ca_cert.public_bytes(pem))
        _write(self.certfile, cert.public_bytes(pem))
        key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        _write(self.keyfile, key_pem)

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts only this CA."""
        return ssl.create_default_context(cafile=self.ca_bundle)

    def cleanup(self) -> None:
        """Remove the temp dir (CA, certificate and key); idempotent."""
        shutil.rmtree(self.dir, ignore_errors=True)


def _write(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
