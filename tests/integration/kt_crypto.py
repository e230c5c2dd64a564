"""Device-key crypto for the integration tests, as the Kontist API expects it.

- make_key()                a new ECDSA P-256 private key
- public_key_hex(key)       the 130 hex digits of the uncompressed point 04||X||Y
- sign_hex(key, text)       hex of the DER ECDSA-SHA256 signature over text's UTF-8 bytes
- verify_hex(pub_hex, text, sig_hex)  the mock's check, for tests of signers
- key_to_pem / write_key_pem / load_key_pem   PKCS#8 PEM files (0600)
- jwt_claims(token)         the payload of a JWT, unverified
"""

import base64
import json
import os

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

__all__ = ["make_key", "public_key_hex", "sign_hex", "verify_hex", "key_to_pem",
           "write_key_pem", "load_key_pem", "jwt_claims"]


def make_key():
    return ec.generate_private_key(ec.SECP256R1())


def public_key_hex(key):
    """The public key "without header": SubjectPublicKeyInfo minus its ASN.1 prefix."""
    public = key.public_key() if hasattr(key, "public_key") else key
    return public.public_bytes(serialization.Encoding.X962,
                               serialization.PublicFormat.UncompressedPoint).hex()


def sign_hex(key, text):
    return key.sign(text.encode("utf-8"), ec.ECDSA(hashes.SHA256())).hex()


def verify_hex(public_hex, text, signature_hex):
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(),
                                                          bytes.fromhex(public_hex))
    try:
        public.verify(bytes.fromhex(signature_hex), text.encode("utf-8"),
                      ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def key_to_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def write_key_pem(key, path, mode=0o600):
    """Write the key as unencrypted PKCS#8 PEM, created with *mode* (no umask race)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(key_to_pem(key))
    os.chmod(path, mode)
    return path


def load_key_pem(path):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def jwt_claims(token):
    """Decode a JWT's payload without checking its signature."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
