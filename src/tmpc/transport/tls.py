"""Node certificates and mutual-TLS 1.3 contexts, with peers pinned by certificate fingerprint.

Every node (and every operator) has one self-signed certificate; the cluster file lists them
all. Identity is **not** the host name: a peer is whoever holds the private key of the
certificate the cluster file pins for it, so :func:`client_context` turns host-name checking
off and the caller compares :func:`peer_fingerprint` with the pinned value
(:func:`check_peer`). Both contexts speak TLS 1.3 only and trust exactly the certificates
they are given, nothing from the system store.

Private keys are handed to :mod:`ssl` without touching the disk where possible: the stdlib
can only load keys from a path, so on systems with ``/dev/fd`` the PEM goes through a pipe
(``/dev/fd/N``); elsewhere it is written, encrypted under a one-time random password that
never leaves memory, to a file of mode 0600 in a private (0700) temporary directory that is
removed as soon as the key is loaded.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import secrets
import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tmpc.errors import DecodeError, ParameterError
from tmpc.transport.base import TransportError

__all__ = [
    "CERT_DAYS",
    "SAN_DNS",
    "PinningError",
    "check_peer",
    "client_context",
    "fingerprint",
    "make_certificate",
    "peer_fingerprint",
    "server_context",
]

#: Validity of a certificate made by :func:`make_certificate`, in days (about ten years).
CERT_DAYS = 3650

#: The one DNS name every node certificate carries; it identifies nothing (pinning does).
SAN_DNS = "tmpc-node"

# Where the kernel exposes a process's open descriptors as paths (Linux, the BSDs, macOS).
_DEV_FD = Path("/dev/fd")
# A blocking write of this much into an empty pipe never waits for a reader on any of those
# systems (the smallest default pipe buffer among them is 16 KiB).
_PIPE_MAX = 16384


class PinningError(TransportError):
    """The peer's TLS certificate is not the one pinned for it in the cluster file."""


def make_certificate(
    common_name: str, *, now: datetime.datetime | None = None, days: int = CERT_DAYS
) -> tuple[bytes, bytes]:
    """A fresh ECDSA P-256 key and a self-signed certificate for it.

    The certificate (subject = issuer = ``CN=common_name``) is its own trust anchor: a CA
    with ``pathlen=0`` and key usage digitalSignature + keyCertSign, so it passes OpenSSL's
    strict X.509 checks both as the anchor and as the end-entity certificate (a certificate
    its key might issue is still refused: peers pin the exact :func:`fingerprint`). Its
    subject alternative names are DNS ``tmpc-node`` and IP ``127.0.0.1``, which identify
    nothing (host names are not checked).

    Args:
        common_name: the subject's common name (a node or operator name; not an identity).
        now: the time of issue (default: the current time); validity starts one hour
            earlier, for clock skew between nodes.
        days: length of validity in days.

    Returns:
        ``(cert_pem, key_pem)``: the PEM certificate and the unencrypted PKCS#8 PEM key.
        The key is secret: the caller **must not** log it and should store it encrypted.

    Raises:
        ParameterError: an empty common name or a non-positive validity.
    """
    if not common_name or days <= 0:
        raise ParameterError("a certificate needs a common name and a positive validity")
    start = (now or datetime.datetime.now(datetime.UTC)) - datetime.timedelta(hours=1)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(SAN_DNS), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert_pem, key_pem


def _load_cert(cert_pem_or_der: bytes | str) -> x509.Certificate:
    """Parse one certificate, PEM (bytes or text) or DER; raises :class:`DecodeError`."""
    data = cert_pem_or_der.encode() if isinstance(cert_pem_or_der, str) else cert_pem_or_der
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise DecodeError("not a valid X.509 certificate") from None


def fingerprint(cert_pem_or_der: bytes | str) -> str:
    """SHA-256 of the certificate's DER encoding, as 64 lower-case hex digits.

    Accepts one PEM certificate (bytes or text) or its DER bytes; raises
    :class:`DecodeError` for anything else."""
    der = _load_cert(cert_pem_or_der).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def peer_fingerprint(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> str | None:
    """The :func:`fingerprint` of the certificate the other end of a TLS connection presented.

    Returns None if there is no TLS connection or the peer presented no certificate."""
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    return hashlib.sha256(der).hexdigest()


def check_peer(ssl_object: ssl.SSLObject | ssl.SSLSocket | None, expected: str, peer: str) -> None:
    """Require that the other end of a TLS connection presented the pinned certificate.

    Args:
        ssl_object: the connection's SSL object (``transport.get_extra_info("ssl_object")``).
        expected: the pinned :func:`fingerprint` (hex) from the cluster file.
        peer: the peer's name, for the error text.

    Raises:
        PinningError: no certificate, or one whose fingerprint is not ``expected``.
    """
    got = peer_fingerprint(ssl_object)
    if got is None or not secrets.compare_digest(got, expected.lower()):
        raise PinningError(f"peer {peer!r} presented a certificate other than the pinned one")


def _trusted_pem(trusted_certs_pem: Sequence[bytes]) -> str:
    """The trusted certificates as one PEM text for ``cadata``, each parsed first."""
    if not trusted_certs_pem:
        raise ParameterError("a TLS context needs at least one trusted certificate")
    return "".join(
        _load_cert(c).public_bytes(serialization.Encoding.PEM).decode() for c in trusted_certs_pem
    )


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _load_via_pipes(ctx: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    """Load the chain through two pipes opened by OpenSSL as ``/dev/fd/N``: no file at all."""
    fds: list[int] = []
    try:
        cert_r, cert_w = os.pipe()
        fds += [cert_r, cert_w]
        key_r, key_w = os.pipe()
        fds += [key_r, key_w]
        _write_all(cert_w, cert_pem)
        _write_all(key_w, key_pem)
        for fd in (cert_w, key_w):
            # Close the write ends now so OpenSSL reads up to an end of file.
            fds.remove(fd)
            os.close(fd)
        ctx.load_cert_chain(str(_DEV_FD / str(cert_r)), str(_DEV_FD / str(key_r)))
    finally:
        for fd in fds:
            os.close(fd)


def _load_via_tempfile(
    ctx: ssl.SSLContext, cert_pem: bytes, key_pem: bytes, password: bytes
) -> None:
    """Load the chain from files of mode 0600 in a private directory, removed right after."""
    with tempfile.TemporaryDirectory(prefix="tmpc-tls-") as tmp:
        cert_path = Path(tmp) / "cert.pem"
        key_path = Path(tmp) / "key.pem"
        for path, data in ((cert_path, cert_pem), (key_path, key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                _write_all(fd, data)
            finally:
                os.close(fd)
        ctx.load_cert_chain(cert_path, key_path, password=password)


def _load_chain(
    ctx: ssl.SSLContext, cert_pem: bytes, key_pem: bytes, password: bytes | None
) -> None:
    """Check that the key belongs to the certificate, then load both into ``ctx``."""
    cert = _load_cert(cert_pem)
    try:
        key = serialization.load_pem_private_key(key_pem, password=password)
    except (ValueError, TypeError):
        # Wrong password, missing password, or not a PEM key: one message, no detail.
        raise DecodeError("the TLS private key cannot be read (wrong passphrase?)") from None
    if key.public_key() != cert.public_key():
        raise ParameterError("the TLS private key does not belong to the certificate")
    chain = cert.public_bytes(serialization.Encoding.PEM)
    if _DEV_FD.is_dir():
        plain = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        if len(plain) <= _PIPE_MAX and len(chain) <= _PIPE_MAX:
            _load_via_pipes(ctx, chain, plain)
            return
    # No /dev/fd: a file is unavoidable, so it only ever holds the key encrypted under a
    # password that exists in this process's memory alone.
    one_time = secrets.token_hex(32).encode()
    sealed = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(one_time),
    )
    _load_via_tempfile(ctx, chain, sealed, one_time)


def _context(
    purpose: int,
    cert_pem: bytes,
    key_pem: bytes,
    trusted_certs_pem: Sequence[bytes],
    password: bytes | None,
) -> ssl.SSLContext:
    ctx = ssl.SSLContext(purpose)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    ctx.load_verify_locations(cadata=_trusted_pem(trusted_certs_pem))
    _load_chain(ctx, cert_pem, key_pem, password)
    return ctx


def server_context(
    cert_pem: bytes,
    key_pem: bytes,
    trusted_certs_pem: Sequence[bytes],
    *,
    password: bytes | None = None,
) -> ssl.SSLContext:
    """A TLS 1.3-only server context that requires a client certificate.

    The handshake succeeds only for a client presenting a certificate that chains to one of
    ``trusted_certs_pem`` (self-signed certificates: in effect, one of those certificates or
    one issued with its key); no system CA is trusted. Which of them may use which endpoint is
    the application's check (:func:`peer_fingerprint`).

    Args:
        cert_pem: this node's certificate (PEM).
        key_pem: its private key (PEM, PKCS#8 or traditional; encrypted if ``password``).
        trusted_certs_pem: the client certificates to accept (PEM or DER), at least one.
        password: the key's passphrase, if the PEM is encrypted.

    Raises:
        DecodeError: a certificate or the key cannot be parsed (or the password is wrong).
        ParameterError: the key is not the certificate's, or nothing is trusted.
    """
    return _context(ssl.PROTOCOL_TLS_SERVER, cert_pem, key_pem, trusted_certs_pem, password)


def client_context(
    cert_pem: bytes,
    key_pem: bytes,
    trusted_certs_pem: Sequence[bytes],
    *,
    password: bytes | None = None,
) -> ssl.SSLContext:
    """A TLS 1.3-only client context that presents ``cert_pem`` and verifies the server.

    The server must present a certificate chaining to one of ``trusted_certs_pem``. Host
    names are **not** checked (nodes are identified by certificate, not by name), so a caller
    that trusts several certificates **must** also pin the expected one with
    :func:`check_peer` before it sends anything that matters.

    Arguments and errors as in :func:`server_context`.
    """
    ctx = _context(ssl.PROTOCOL_TLS_CLIENT, cert_pem, key_pem, trusted_certs_pem, password)
    ctx.check_hostname = False
    # check_hostname=False leaves verify_mode alone, but say it for the reader.
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx
