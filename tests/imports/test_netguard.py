"""The network guard decides from addresses alone: nothing here opens a connection."""

from __future__ import annotations

import ipaddress

import pytest

from modelmgr.imports import netguard
from modelmgr.imports.netguard import BadImportURL, ImportRefused, address_problem, guard_url


@pytest.fixture
def strict(settings):
    settings.MODELMGR_IMPORT_ALLOWED_HOSTS = []
    settings.MODELMGR_IMPORT_ALLOW_PRIVATE = False
    settings.MODELMGR_IMPORT_ALLOWED_PRIVATE_HOSTS = []
    return settings


@pytest.fixture
def fake_dns(monkeypatch):
    """Answers for made-up names; an unknown name is a test bug, never a real lookup."""
    answers: dict[str, list[str]] = {}

    def resolve(host: str, port: int):
        literal = netguard._literal(host)
        if literal is not None:
            return [literal]
        return [ipaddress.ip_address(a) for a in answers[host]]

    monkeypatch.setattr(netguard, "resolve_host", resolve)
    return answers


@pytest.mark.parametrize(
    "address, reason",
    [
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.9", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("100.64.0.1", "shared"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "broadcast"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("2002:7f00:1::1", "loopback"),
        ("64:ff9b::a00:1", "private"),
    ],
)
def test_non_public_addresses_are_named(address, reason):
    problem = address_problem(ipaddress.ip_address(address))
    assert problem is not None and reason in problem[0]


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:4700::1111", "::ffff:93.184.216.34"])
def test_public_addresses_pass(address):
    assert address_problem(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/model.onnx",
        "http://10.0.0.5/model.onnx",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/model.onnx",
        "http://[::ffff:127.0.0.1]/model.onnx",
        "http://[::ffff:169.254.169.254]/latest",
        "http://[fe80::1]/model.onnx",
        "http://127.1/model.onnx",
        "http://2130706433/model.onnx",
        "http://localhost/model.onnx",
    ],
)
def test_private_and_local_urls_are_refused(strict, url):
    with pytest.raises(ImportRefused) as caught:
        guard_url(url)
    assert "refused" in caught.value.detail
    assert caught.value.status == 422


@pytest.mark.parametrize(
    "url, problem",
    [
        ("ftp://example.com/model.onnx", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("gopher://example.com/", "scheme"),
        ("model.onnx", "scheme"),
        ("http://user:secret@example.com/model.onnx", "credentials"),
        ("", "required"),
        ("https://example.com/" + "a" * 2100, "longer"),
    ],
)
def test_malformed_urls_are_a_bad_request(strict, url, problem):
    with pytest.raises(BadImportURL) as caught:
        guard_url(url)
    assert problem in caught.value.detail
    assert caught.value.status == 400


def test_public_host_passes_and_is_pinned_to_its_checked_address(strict, fake_dns):
    fake_dns["models.example.com"] = ["93.184.216.34"]
    guarded = guard_url("https://models.example.com/org/model.onnx?download=1")
    assert guarded.address == ipaddress.ip_address("93.184.216.34")
    assert str(guarded.pinned_url) == "https://93.184.216.34/org/model.onnx?download=1"
    assert guarded.host_header == "models.example.com"
    assert guarded.host == "models.example.com"


def test_host_with_one_private_address_among_public_ones_is_refused(strict, fake_dns):
    fake_dns["mixed.example.com"] = ["93.184.216.34", "10.0.0.8"]
    with pytest.raises(ImportRefused, match="10.0.0.8"):
        guard_url("https://mixed.example.com/model.onnx")


def test_host_outside_the_allow_list_is_refused_before_any_lookup(strict, fake_dns):
    strict.MODELMGR_IMPORT_ALLOWED_HOSTS = ["huggingface.co", "*.hf.co"]
    with pytest.raises(ImportRefused, match="not in the import allow-list"):
        guard_url("https://evil.example.net/model.onnx")  # fake_dns has no answer: no lookup


@pytest.mark.parametrize(
    "host, allowed",
    [
        ("huggingface.co", True),
        ("cdn-lfs.hf.co", True),
        ("a.b.hf.co", True),
        ("hf.co", False),
        ("evilhf.co", False),
        ("huggingface.co.evil.net", False),
    ],
)
def test_allow_list_matches_exact_hosts_and_subdomain_wildcards(strict, fake_dns, host, allowed):
    strict.MODELMGR_IMPORT_ALLOWED_HOSTS = ["huggingface.co", "*.hf.co"]
    fake_dns[host] = ["93.184.216.34"]
    if allowed:
        assert guard_url(f"https://{host}/m.onnx").host == host
    else:
        with pytest.raises(ImportRefused, match="allow-list"):
            guard_url(f"https://{host}/m.onnx")


def test_allow_private_opens_private_networks_but_not_metadata_or_unspecified(strict):
    strict.MODELMGR_IMPORT_ALLOW_PRIVATE = True
    assert guard_url("http://10.0.0.5/m.onnx").host == "10.0.0.5"
    assert guard_url("http://[::1]/m.onnx").host == "::1"
    with pytest.raises(ImportRefused, match="metadata"):
        guard_url("http://169.254.169.254/latest/meta-data/")
    with pytest.raises(ImportRefused, match="unspecified"):
        guard_url("http://0.0.0.0/m.onnx")
    with pytest.raises(ImportRefused, match="multicast"):
        guard_url("http://224.0.0.1/m.onnx")


def test_allowed_private_hosts_accept_names_and_cidrs(strict, fake_dns):
    strict.MODELMGR_IMPORT_ALLOWED_PRIVATE_HOSTS = ["models.internal", "10.20.0.0/16"]
    fake_dns["models.internal"] = ["10.9.9.9"]
    fake_dns["other.internal"] = ["10.20.1.2"]
    fake_dns["stray.internal"] = ["10.30.1.2"]
    assert guard_url("http://models.internal/m.onnx").address == ipaddress.ip_address("10.9.9.9")
    assert guard_url("http://other.internal/m.onnx").host == "other.internal"
    assert guard_url("http://10.20.3.4/m.onnx").host == "10.20.3.4"
    with pytest.raises(ImportRefused, match="private"):
        guard_url("http://stray.internal/m.onnx")


def test_metadata_address_needs_an_explicit_entry(strict):
    strict.MODELMGR_IMPORT_ALLOWED_PRIVATE_HOSTS = ["169.254.169.254"]
    assert guard_url("http://169.254.169.254/latest").host == "169.254.169.254"
