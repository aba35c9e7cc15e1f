"""Certificates and SuperNode keys for a Flower deployment on 127.0.0.1.

A self-signed CA, a server certificate it signs (subjectAltName IP 127.0.0.1
and DNS localhost, what the SuperLink presents), and one ECDSA P-384 key pair
per SuperNode: the private key in OpenSSH format for ``flower-supernode
--auth-supernode-private-key``, the public key as one OpenSSH line for
``flwr supernode register``. For tests and trials only: the CA key sits next
to the certificates.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

_VALIDITY = dt.timedelta(days=30)


@dataclass(frozen=True)
class LocalCertificates:
    """Paths of what :func:`make_local_certificates` wrote."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    node_keys: list[Path]
    node_public_keys: list[Path]


def _write(path: Path, data: bytes, private: bool) -> None:
    # Create private files 0600 from the start, so a key is never readable by others.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600 if private else 0o644)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(valid_for: dt.timedelta = _VALIDITY) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed CA certificate (may sign leaf certificates only) and its key."""
    key = ec.generate_private_key(ec.SECP384R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("condense-local-ca"))
        .issuer_name(_name("condense-local-ca"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + valid_for)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def make_server_cert(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    ips: tuple[str, ...] = ("127.0.0.1",),
    dns_names: tuple[str, ...] = ("localhost",),
    valid_for: dt.timedelta = _VALIDITY,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A TLS server certificate signed by ``ca_key`` whose subjectAltName lists ``ips`` and ``dns_names``."""
    key = ec.generate_private_key(ec.SECP384R1())
    now = dt.datetime.now(dt.timezone.utc)
    san = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips] + [x509.DNSName(d) for d in dns_names]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("superlink"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + valid_for)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def write_node_key_pair(private_path: Path, public_path: Path, comment: str = "") -> None:
    """An ECDSA P-384 key pair: OpenSSH private key (0600) and one-line OpenSSH public key."""
    key = ec.generate_private_key(ec.SECP384R1())
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    _write(private_path, private, private=True)
    _write(public_path, public + (b" " + comment.encode() if comment else b"") + b"\n", private=False)


def make_local_certificates(certdir: str | os.PathLike, num_nodes: int) -> LocalCertificates:
    """Write ``ca.crt``/``ca.key``, ``server.pem``/``server.key`` and ``supernodeI``/``supernodeI.pub`` into ``certdir``."""
    d = Path(certdir)
    d.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = make_ca()
    server_cert, server_key = make_server_cert(ca_cert, ca_key)
    _write(d / "ca.crt", ca_cert.public_bytes(serialization.Encoding.PEM), private=False)
    _write(d / "ca.key", _pem_key(ca_key), private=True)
    _write(d / "server.pem", server_cert.public_bytes(serialization.Encoding.PEM), private=False)
    _write(d / "server.key", _pem_key(server_key), private=True)
    keys, pubs = [], []
    for i in range(num_nodes):
        keys.append(d / f"supernode{i}")
        pubs.append(d / f"supernode{i}.pub")
        write_node_key_pair(keys[-1], pubs[-1], comment=f"supernode{i}")
    return LocalCertificates(d / "ca.crt", d / "server.pem", d / "server.key", keys, pubs)
