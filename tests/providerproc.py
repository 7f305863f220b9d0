"""A second, separate modelmgr worker serving a tiny LLM: the provider of provider tests.

It shares nothing with the test's database: its home (built once per session by
``python -m tests.providerproc HOME LLAMA_FOLDER`` in a subprocess) holds its own SQLite
database (migrated; the tiny llama stored and served by slot ``chat``; staff user
``provider-admin`` with read tokens ``robot`` and ``spare``) and its own artifact store.
Each ``start_provider`` runs on a fresh copy of that database, so a test may revoke a
token or stop the provider without touching another test's.

    home = seed_provider_home(tmp_dir, llama_folder)     # once per session
    with start_provider(home) as provider:                # a real worker process
        provider.serve_url + "/v1"  # OpenAI-compatible; "/api/..." Ollama-compatible
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.workerproc import ROOT, WorkerProcess, free_port

PROVIDER_ENV = {
    "MODELMGR_WORKER_DEVICE": "cpu",
    "MODELMGR_RECONCILE_INTERVAL_S": "3600",
    "MODELMGR_STATS_FLUSH_S": "3600",
    "MODELMGR_TOKEN_CACHE_S": "0.2",
    "REDIS_URL": "",
}


@dataclass(frozen=True)
class ProviderHome:
    root: Path
    token: str  # read token "robot" of provider-admin
    spare: str  # read token "spare" (tests revoke it)

    @property
    def database(self) -> Path:
        return self.root / "db.sqlite3"

    def env(self, database: Path) -> dict[str, str]:
        return {
            "DJANGO_SETTINGS_MODULE": "modelmgr.settings",
            "PYTHONUNBUFFERED": "1",
            "SQLITE_PATH": str(database),
            "MODELMGR_ARTIFACT_ROOT": str(self.root / "artifacts"),
            "MODELMGR_STAGING_ROOT": str(self.root / "artifacts" / ".staging"),
            **PROVIDER_ENV,
        }


def _clean_environ() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("DATABASE_URL", "SQLITE_PATH", "REDIS_URL"):
        env.pop(name, None)
    return env


def seed_provider_home(root: Path, llama_folder: Path) -> ProviderHome:
    """Build the provider's home in a subprocess (its own settings, its own database)."""
    root.mkdir(parents=True, exist_ok=True)
    home = ProviderHome(root=root, token="", spare="")
    env = {**_clean_environ(), **home.env(home.database), "MODELMGR_VAR_DIR": str(root / "var")}
    done = subprocess.run(
        [sys.executable, "-m", "tests.providerproc", str(root), str(llama_folder)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    if done.returncode != 0:
        raise RuntimeError(f"seeding the provider failed:\n{done.stdout}\n{done.stderr}")
    tokens = json.loads(done.stdout.strip().splitlines()[-1])
    return ProviderHome(root=root, token=tokens["robot"], spare=tokens["spare"])


class ProviderProcess(WorkerProcess):
    """The provider worker, with the database copy it runs on."""

    def __init__(self, home: ProviderHome, env: dict[str, str], timeout: float):
        self.home = home
        self.database = Path(tempfile.mkdtemp(prefix="modelmgr-provider-db-")) / "db.sqlite3"
        shutil.copyfile(home.database, self.database)
        super().__init__(env={**home.env(self.database), **env}, port=free_port(), timeout=timeout)

    @property
    def openai_url(self) -> str:
        return self.serve_url + "/v1"

    def revoke(self, token_name: str) -> None:
        """``manage.py revoke_token`` on the provider's own database."""
        env = {**_clean_environ(), **self.env}
        subprocess.run(
            [sys.executable, "manage.py", "revoke_token", "provider-admin", "--name", token_name],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.database.parent, ignore_errors=True)


def start_provider(
    home: ProviderHome, *, env: dict | None = None, timeout: float = 90
) -> ProviderProcess:
    provider = ProviderProcess(home, {k: str(v) for k, v in (env or {}).items()}, timeout)
    try:
        provider.start()
        provider.wait_ready()
        return provider
    except BaseException:
        provider.stop()
        raise


def _seed(root: Path, llama_folder: Path) -> None:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from modelmgr.models import RegisteredModel, Slot
    from modelmgr.registry.tokens import token_create
    from tests.llmfiles import folder_files
    from tests.registry.factories import make_version

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user(
        "provider-admin", password="pw", is_staff=True, is_superuser=True
    )
    model = RegisteredModel.objects.create(owner=user, name="tiny-llama", task="llm")
    version = make_version(model, "1", files=folder_files(llama_folder), framework="huggingface")
    Slot.objects.create(name="chat", task="llm", active_version=version)
    robot = token_create(user=user, name="robot", scopes=("read",))[1]
    spare = token_create(user=user, name="spare", scopes=("read",))[1]
    print(json.dumps({"robot": robot, "spare": spare}))


if __name__ == "__main__":
    _seed(Path(sys.argv[1]), Path(sys.argv[2]))
