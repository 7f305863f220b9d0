"""Provider fixtures: a real second worker serving a tiny LLM (tests/providerproc.py)."""

from __future__ import annotations

import pytest

from tests.providerproc import seed_provider_home, start_provider


@pytest.fixture(scope="session")
def provider_home(tmp_path_factory, llama_files):
    root = tmp_path_factory.mktemp("provider-home")
    return seed_provider_home(root / "home", llama_files.folder(root / "llama"))


@pytest.fixture(scope="module")
def provider(provider_home):
    """The provider worker, shared by a module's tests (they must leave it running)."""
    with start_provider(provider_home) as provider:
        yield provider


@pytest.fixture
def staff_api(client, staff):
    client.force_login(staff)
    return client


def allow(settings, port: int) -> str:
    """Let imports and providers reach 127.0.0.1:<port> (loopback stays refused by
    default); returns the entry, for a worker's environment."""
    entry = f"127.0.0.1:{port}"
    settings.MODELMGR_IMPORT_ALLOWED_PRIVATE_HOSTS = [entry]
    return entry


def register(api, provider, *, name="lab", key=None, kind="openai", url=None):
    return api.post(
        "/api/v1/providers",
        {
            "name": name,
            "kind": kind,
            "base_url": url or (provider.openai_url if kind == "openai" else provider.serve_url),
            "api_key": provider.home.token if key is None else key,
        },
        content_type="application/json",
    )
