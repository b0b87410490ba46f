"""A fleet CA and provider certificates for a fleet on one machine (the local fleet, tests,
benchmarks). Providers get theirs from the play (roles/provider_api/tasks/fleet_pki.yml, with
community.crypto); this makes the same shape: an ECDSA P-256 CA, and per provider a
certificate whose common name is its ``provider_name`` and whose names hold its addresses,
good for both ends of a TLS connection."""
from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path
from typing import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_ca(directory: Path, name: str = "dockpool fleet CA", days: int = 30) -> tuple[Path, Path]:
    """(certificate, key) of a new CA in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(key, hashes.SHA256()))
    (directory / "ca.crt").write_bytes(_pem(cert))
    _write_key(key, directory / "ca.key")
    return directory / "ca.crt", directory / "ca.key"


def issue(ca: tuple[Path, Path], directory: Path, name: str, addresses: Sequence[str] = (),
          days: int = 30) -> tuple[Path, Path]:
    """(certificate, key) for provider ``name`` at ``addresses``, signed by ``ca``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert = x509.load_pem_x509_certificate(ca[0].read_bytes())
    ca_key = serialization.load_pem_private_key(ca[1].read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(name)]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
    (directory / "fleet.crt").write_bytes(_pem(cert))
    _write_key(key, directory / "fleet.key")
    return directory / "fleet.crt", directory / "fleet.key"


def fleet_settings(ca: tuple[Path, Path], directory: Path, name: str, address: str, port: int) -> dict:
    """The API settings that make a provider a member of the CA's fleet, its files in ``directory``."""
    cert, key = issue(ca, directory, name, [address])
    return {"fleet_port": port, "fleet_cert": str(cert), "fleet_key": str(key), "fleet_cas": str(ca[0])}
