"""Shared fixtures: isolated artifact storage, personas, tiny real models."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings

from tests.modelfiles import ModelFiles

# Import jobs run only when a test drives them (tests/imports): importing modelmgr.asgi
# must not start the background import runner inside the test process.
django_settings.MODELMGR_IMPORT_RUNNER = False
# Likewise the worker-state relay: consumer tests expect only the events they cause.
# (The real web processes of the browser tests run it.)
django_settings.MODELMGR_WORKER_EVENTS_RELAY = False


@pytest.fixture(autouse=True)
def isolated_storage(settings, tmp_path):
    """Every test gets its own artifact store and staging folder."""
    root = tmp_path / "artifacts"
    staging = root / ".staging"
    staging.mkdir(parents=True)
    settings.ARTIFACT_ROOT = root
    settings.STAGING_ROOT = staging
    settings.FILE_UPLOAD_TEMP_DIR = str(staging)
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root)},
        },
    }
    return root


@pytest.fixture(scope="session")
def model_files(tmp_path_factory) -> ModelFiles:
    return ModelFiles(tmp_path_factory.mktemp("model-cache"))


@pytest.fixture(scope="session")
def llama_files(tmp_path_factory):
    """Tiny Llama folders (tests.llmfiles), with or without a chat template."""
    from tests.llmfiles import LlamaFiles

    return LlamaFiles(tmp_path_factory.mktemp("llama-cache"))


# --- personas -------------------------------------------------------------------


@pytest.fixture
def owner(django_user_model):
    return django_user_model.objects.create_user("olivia", password="pw-olivia")


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user("oscar", password="pw-oscar")


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user(
        "stella", password="pw-stella", is_staff=True, is_superuser=True
    )


def make_token(user, scopes=("read", "write"), name="robot") -> str:
    from modelmgr.models import ApiToken

    raw = ApiToken.generate()
    ApiToken.objects.create(
        user=user, name=name, token_hash=ApiToken.hash_token(raw), scopes=list(scopes)
    )
    return raw


@pytest.fixture
def robot_token(owner) -> str:
    """A read+write token belonging to the owner persona."""
    return make_token(owner)


@pytest.fixture
def read_only_token(owner) -> str:
    return make_token(owner, scopes=("read",), name="reader")


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def api(client, robot_token):
    """A Django test client that sends the owner's bearer token on every request."""
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {robot_token}"
    return client


# --- test database a worker subprocess can open (tests/workerproc.py) ------------------


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, tmp_path_factory):
    """SQLite: put the test database in a file instead of memory, so a real worker started
    by tests/workerproc.py can read it. A tmp dir keeps it unique per run and xdist worker.
    PostgreSQL is left alone (its test database, test_<NAME>, is reachable already)."""
    db = django_settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.sqlite3" and not (db.get("TEST") or {}).get("NAME"):
        db.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("testdb") / "test.sqlite3")


# --- deploy (tests/deploy, tests/api/test_{slots,switch,predict,status}*) ----------------


@pytest.fixture
def closed_port_worker(settings) -> str:
    """MODELMGR_WORKER_URL pointing at a port nobody listens on (a stopped worker)."""
    from tests.workerproc import free_port

    settings.MODELMGR_WORKER_URL = f"http://127.0.0.1:{free_port()}"
    return settings.MODELMGR_WORKER_URL


@pytest.fixture
def web(transactional_db):
    """The real web process (daphne through modelmgr.web_server) on this test's database
    and artifact store, for what only a real socket shows."""
    from tests.webproc import WebProcess
    from tests.workerproc import worker_environment

    process = WebProcess(env=worker_environment()).start()
    try:
        yield process
    finally:
        process.stop()
