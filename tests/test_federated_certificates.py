"""The certificates and SuperNode keys that ``LocalDeployment(secure=True)`` uses."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_ssh_private_key, load_ssh_public_key
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from condense.federated.local_certificates import make_local_certificates


def test_server_cert_verifies_for_localhost_and_keys_are_private(tmp_path: Path) -> None:
    certs = make_local_certificates(tmp_path / "certs", num_nodes=2)
    ca = x509.load_pem_x509_certificate(certs.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(certs.server_cert.read_bytes())
    store = Store([ca])
    # A full TLS server-name check (chain to the CA, subjectAltName, key usage), as a client does it.
    for name in (x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")):
        chain = PolicyBuilder().store(store).build_server_verifier(name).verify(server, [])
        assert chain[-1] == ca
    with pytest.raises(VerificationError):
        PolicyBuilder().store(store).build_server_verifier(x509.IPAddress(ipaddress.ip_address("10.0.0.5"))).verify(server, [])
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)

    # The server key belongs to the server certificate.
    server_key = load_pem_private_key(certs.server_key.read_bytes(), None)
    assert server_key.public_key().public_numbers() == server.public_key().public_numbers()

    assert len(certs.node_keys) == len(certs.node_public_keys) == 2
    for key_path, pub_path in zip(certs.node_keys, certs.node_public_keys):
        # The formats flower-supernode (OpenSSH private) and `flwr supernode register` (OpenSSH public) load.
        key = load_ssh_private_key(key_path.read_bytes(), None)
        pub = load_ssh_public_key(pub_path.read_bytes())
        assert isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP384R1)
        assert key.public_key().public_numbers() == pub.public_numbers()
    assert certs.node_keys[0].read_bytes() != certs.node_keys[1].read_bytes()

    for private in (certs.server_key, tmp_path / "certs" / "ca.key", *certs.node_keys):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600, private
