"""The emulator's TLS certificate: self-signed for 127.0.0.1 and localhost, owner-only on disk.

Why: google-genai always dials ``wss://`` (live-protocol.md section 6), so the emulator speaks TLS
with a certificate the client is told to trust.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl

from .store import make_private_dirs, tighten_mode, write_private_file

__all__ = ["generate_certificate", "server_context"]


def generate_certificate(cert_dir: str) -> tuple[str, str]:
    """Write a self-signed cert (and key) for 127.0.0.1 and localhost into ``cert_dir``.

    Existing files are reused (a key readable by others is tightened to 0600 first). New files are
    owner-only from their first byte (0600, in a directory made 0700 when missing) and written
    atomically: never a window at a wider mode.

    Returns:
        (cert.pem path, key.pem path).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    make_private_dirs(cert_dir)
    cert_path = os.path.join(cert_dir, "cert.pem")
    key_path = os.path.join(cert_dir, "key.pem")
    if os.path.exists(cert_path) and os.path.exists(key_path):
        tighten_mode(key_path)
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    write_private_file(
        key_path,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    write_private_file(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def server_context(cert_path: str, key_path: str) -> ssl.SSLContext:
    """The server-side TLS context for the certificate (what ``serve(ssl=...)`` takes)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context
