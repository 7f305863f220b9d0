"""The connection goes to the address the guard checked, with the original Host and TLS name.

Made-up names resolve through a fake resolver to 127.0.0.1 (or to addresses that are only
judged, never connected to); the system resolver would not know them, so a download
that succeeds proves the connection did not look the name up again.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from modelmgr.imports import netguard
from modelmgr.imports.runner import import_job_run
from modelmgr.models import DownloadState
from tests.imports.server import FileServer

pytestmark = pytest.mark.django_db

PATH = "/models/tiny.onnx"


@pytest.fixture
def fake_dns(monkeypatch):
    answers: dict[str, list[list[str]]] = {}

    def resolve(host: str, port: int):
        literal = netguard._literal(host)
        if literal is not None:
            return [literal]
        queue = answers[host]
        current = queue.pop(0) if len(queue) > 1 else queue[0]
        if not current:
            raise netguard.HostUnresolved(f"host {host!r} does not resolve: no answer")
        return [ipaddress.ip_address(a) for a in current]

    monkeypatch.setattr(netguard, "resolve_host", resolve)
    return answers


def test_connection_is_pinned_and_sends_the_original_host(
    server, onnx_data, create_job, fake_dns, settings
):
    settings.MODELMGR_IMPORT_ALLOWED_PRIVATE_HOSTS = [f"models.test:{server.port}"]
    fake_dns["models.test"] = [["127.0.0.1"]]
    server.add(PATH, onnx_data)
    job = create_job(server.url(PATH, host="models.test"))

    done = import_job_run(job.pk)

    assert done.state == DownloadState.DONE, done.error
    assert server.requests[0].header("Host") == f"models.test:{server.port}"


def test_dns_answer_turning_private_after_the_check_is_refused(
    server, create_job, fake_dns, settings
):
    # Public when the import is created (nothing connects then), loopback when the
    # runner checks again: the download is refused, nothing is contacted.
    settings.MODELMGR_IMPORT_ALLOWED_PRIVATE_HOSTS = []
    fake_dns["rebind.test"] = [["93.184.216.34"], ["127.0.0.1"]]
    job = create_job(server.url(PATH, host="rebind.test"))

    failed = import_job_run(job.pk)

    assert failed.state == DownloadState.FAILED
    assert "loopback" in failed.error
    assert server.requests == []


def test_host_that_stops_resolving_is_tried_again_later(server, create_job, fake_dns, settings):
    settings.MODELMGR_IMPORT_ALLOWED_PRIVATE_HOSTS = []
    fake_dns["flaky.test"] = [["93.184.216.34"], []]
    job = create_job(server.url(PATH, host="flaky.test"))

    queued = import_job_run(job.pk)

    assert queued.state == DownloadState.QUEUED
    assert "does not resolve" in queued.error and "retrying" in queued.error
    assert server.requests == []


def _certificate(tmp_path: Path, host: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls_server(import_settings, tmp_path, fake_dns):
    cert, key = _certificate(tmp_path, "secure.test")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    srv = FileServer(tls=context).start()
    import_settings.MODELMGR_IMPORT_ALLOWED_PRIVATE_HOSTS = [f"secure.test:{srv.port}"]
    fake_dns["secure.test"] = [["127.0.0.1"]]
    srv.ca_path = cert
    yield srv
    srv.stop()


def test_https_import_verifies_the_certificate_for_the_original_name(
    tls_server, onnx_data, create_job, settings
):
    settings.MODELMGR_IMPORT_CA_BUNDLE = str(tls_server.ca_path)
    tls_server.add(PATH, onnx_data)
    job = create_job(tls_server.url(PATH, host="secure.test"))

    done = import_job_run(job.pk)

    assert done.state == DownloadState.DONE, done.error
    assert tls_server.requests[0].header("Host") == f"secure.test:{tls_server.port}"


def test_https_with_an_untrusted_certificate_fails_without_retrying(
    tls_server, onnx_data, create_job, isolated_storage
):
    tls_server.add(PATH, onnx_data)
    job = create_job(tls_server.url(PATH, host="secure.test"))

    failed = import_job_run(job.pk)

    assert failed.state == DownloadState.FAILED
    assert "certificate" in failed.error
    assert failed.attempts == 1
    assert tls_server.requests == []


def test_redirect_from_https_to_http_is_refused(
    tls_server, server, onnx_data, create_job, settings
):
    settings.MODELMGR_IMPORT_CA_BUNDLE = str(tls_server.ca_path)
    server.add(PATH, onnx_data)
    tls_server.add("/go", redirect=server.url(PATH))
    job = create_job(tls_server.url("/go", host="secure.test"))

    failed = import_job_run(job.pk)

    assert failed.state == DownloadState.FAILED
    assert "from https to http is refused" in failed.error
    assert server.requests == []
