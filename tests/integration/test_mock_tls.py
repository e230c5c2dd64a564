"""kontist-mock: TLS set-up and the certificate faults."""

import socket
import ssl
import warnings

import pytest

pytestmark = pytest.mark.usefixtures("no_mock_tracebacks")


def handshake(mock, context, server_hostname=None):
    """Complete a TLS handshake; return (protocol version, peer cert subject CN)."""
    with socket.create_connection((mock.host, mock.port), timeout=5) as sock:
        with context.wrap_socket(sock, server_hostname=server_hostname or mock.host) as tls:
            cert = tls.getpeercert()
            subject = dict(item[0] for item in cert["subject"]) if cert else {}
            return tls.version(), subject.get("commonName")


def test_good_certificate(mock):
    version, _ = handshake(mock, mock.ssl_context())
    assert version in ("TLSv1.2", "TLSv1.3")
    # the cert names localhost too
    handshake(mock, mock.ssl_context(), server_hostname="localhost")
    assert mock.api("GET", "/api/user")[0] == 401


def test_tls_1_1_is_refused(mock):
    context = mock.ssl_context()
    with warnings.catch_warnings():            # TLSv1_1 itself is deprecated, rightly
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with pytest.raises(ssl.SSLError):
        handshake(mock, context)


def test_tls_1_2_is_enough(mock):
    context = mock.ssl_context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    assert handshake(mock, context)[0] == "TLSv1.2"


def test_alpn_offers_http_1_1(mock):
    context = mock.ssl_context()
    context.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection((mock.host, mock.port), timeout=5) as sock:
        with context.wrap_socket(sock, server_hostname=mock.host) as tls:
            assert tls.selected_alpn_protocol() == "http/1.1"


def test_cert_fault_untrusted(mock_factory, mock_tls_dir):
    mock = mock_factory(cert_fault="untrusted")
    with pytest.raises(ssl.SSLCertVerificationError) as failure:
        handshake(mock, mock.ssl_context())
    assert "mismatch" not in str(failure.value)
    assert failure.value.verify_code in (19, 20, 21)   # untrusted issuer / chain
    with pytest.raises(ssl.SSLCertVerificationError):
        mock.api("GET", "/api/user")
    # the cert itself is fine for 127.0.0.1: only its CA is unknown
    other_ca = mock.ssl_context(ca_file=str(mock_tls_dir / "untrusted-ca.pem"))
    handshake(mock, other_ca)
    # and the mock still serves after the failed handshakes
    conn = mock.connect(context=other_ca)
    try:
        assert mock.api("GET", "/api/user", conn=conn)[0] == 401
    finally:
        conn.close()


def test_cert_fault_wrong_host(mock_factory):
    mock = mock_factory(cert_fault="wrong-host")
    with pytest.raises(ssl.SSLCertVerificationError) as failure:
        handshake(mock, mock.ssl_context())
    # X509_V_ERR_HOSTNAME_MISMATCH or X509_V_ERR_IP_ADDRESS_MISMATCH
    assert failure.value.verify_code in (62, 64)
    assert "mismatch" in str(failure.value)
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        handshake(mock, mock.ssl_context(), server_hostname="localhost")
    # signed by the reported CA: it verifies for the name it does carry
    version, common_name = handshake(mock, mock.ssl_context(), server_hostname="wrong.example")
    assert common_name == "wrong.example"
