"""Throwaway TLS material for the mock.

Everything lives in one directory so that a test session can create it once
and hand it to every mock it starts (``--tls-dir``).  The files are:

=====================  ==========================================================
ca.pem                 the CA the mock reports as ``ca_file``
server.pem/-key.pem    cert for 127.0.0.1, ::1 and localhost, signed by ca.pem
wrong-host.pem/-key    cert for wrong.example only, signed by ca.pem
untrusted-ca.pem       a second CA that clients are never told about
untrusted.pem/-key     cert for 127.0.0.1/localhost signed by untrusted-ca.pem
=====================  ==========================================================

All keys are ECDSA P-256, which keeps generation in the millisecond range.  ``valid-until``
holds the leaf certificates' expiry, so that a mock reusing the directory needs none of
cryptography's x509 code (importing it took more than half of a mock's start-up).
"""

import datetime
import fcntl
import ipaddress
import os
from dataclasses import dataclass

GOOD_HOSTS = ("localhost",)
GOOD_IPS = ("127.0.0.1", "::1")
WRONG_HOST = "wrong.example"

# file name stems written into the TLS directory
_STEMS = ("ca", "server", "wrong-host", "untrusted-ca", "untrusted")
_MIN_REMAINING = datetime.timedelta(days=2)
_VALID_DAYS = 3650
# the leaf certificates' notAfter (UTC, ISO 8601), written last when the files are made
_VALID_UNTIL = "valid-until"
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"


@dataclass
class ServerCert:
    cert_file: str
    key_file: str


@dataclass
class TlsFiles:
    directory: str
    ca_file: str
    server: ServerCert
    wrong_host: ServerCert
    untrusted: ServerCert

    def for_fault(self, cert_fault):
        """The certificate the server presents for a --cert-fault value."""
        if cert_fault is None:
            return self.server
        if cert_fault == "wrong-host":
            return self.wrong_host
        if cert_fault == "untrusted":
            return self.untrusted
        raise ValueError(f"unknown cert fault {cert_fault!r}")


def _paths(directory, stem):
    return (os.path.join(directory, stem + ".pem"),
            os.path.join(directory, stem + "-key.pem"))


def _files(directory):
    def server(stem):
        return ServerCert(*_paths(directory, stem))
    return TlsFiles(directory=directory,
                    ca_file=_paths(directory, "ca")[0],
                    server=server("server"),
                    wrong_host=server("wrong-host"),
                    untrusted=server("untrusted"))


def _usable(directory):
    """True when every file is present and the leaf certs are not about to expire."""
    for stem in _STEMS:
        for path in _paths(directory, stem):
            if not os.path.isfile(path):
                return False
    try:
        with open(os.path.join(directory, _VALID_UNTIL), encoding="ascii") as f:
            valid_until = datetime.datetime.strptime(f.read().strip(), _TIME_FORMAT)
    except (OSError, ValueError):
        return False
    return valid_until - datetime.datetime.utcnow() > _MIN_REMAINING


def _name(common_name):
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kontist-mock"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _new_key():
    from cryptography.hazmat.primitives.asymmetric import ec
    return ec.generate_private_key(ec.SECP256R1())


def _validity(builder, now):
    return (builder
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=_VALID_DAYS)))


def _make_ca(common_name, now):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    key = _new_key()
    name = _name(common_name)
    builder = (x509.CertificateBuilder()
               .subject_name(name)
               .issuer_name(name)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number()))
    cert = (_validity(builder, now)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=False, content_commitment=False,
                key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def _make_leaf(ca_key, ca_cert, hosts, ips, now):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID
    key = _new_key()
    alt_names = [x509.DNSName(h) for h in hosts]
    alt_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    builder = (x509.CertificateBuilder()
               .subject_name(_name(hosts[0]))
               .issuer_name(ca_cert.subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number()))
    cert = (_validity(builder, now)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return key, cert


def _write(path, data, mode):
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _store(directory, stem, key, cert):
    from cryptography.hazmat.primitives import serialization
    cert_path, key_path = _paths(directory, stem)
    _write(key_path, key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()), 0o600)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _generate(directory):
    # one time for every certificate: valid-until then holds their expiry, to the second
    now = datetime.datetime.utcnow().replace(microsecond=0)
    ca_key, ca_cert = _make_ca("kontist-mock test CA", now)
    _store(directory, "ca", ca_key, ca_cert)
    _store(directory, "server",
           *_make_leaf(ca_key, ca_cert, GOOD_HOSTS, GOOD_IPS, now))
    _store(directory, "wrong-host",
           *_make_leaf(ca_key, ca_cert, (WRONG_HOST,), (), now))
    other_key, other_cert = _make_ca("kontist-mock untrusted CA", now)
    _store(directory, "untrusted-ca", other_key, other_cert)
    _store(directory, "untrusted",
           *_make_leaf(other_key, other_cert, GOOD_HOSTS, GOOD_IPS, now))
    valid_until = now + datetime.timedelta(days=_VALID_DAYS)
    _write(os.path.join(directory, _VALID_UNTIL),
           (valid_until.strftime(_TIME_FORMAT) + "\n").encode("ascii"), 0o644)


def ensure(directory):
    """Return the TLS files in *directory*, creating them when missing or stale.

    A lock file serialises concurrent mocks sharing one directory, so none of
    them can pick up a CA from one run and a server cert from another.
    """
    directory = os.path.abspath(directory)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    with open(os.path.join(directory, ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _usable(directory):
            _generate(directory)
    return _files(directory)
