"""schemathesis against the live web process's /api/v1/openapi.json: no 5xx, and every
response (status, content type, body) is what the schema documents.

schemathesis runs from its own venv (var/schemathesis-venv, `make schemathesis`), with a
fixed seed and a bounded number of examples per operation so the run stays short. The
test is skipped when that venv is missing, except under CI=true, where it fails.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import make_token
from tests.inference.support import make_slot, onnx_version
from tests.webproc import WebProcess
from tests.workerproc import ROOT, start_worker, worker_environment

SCHEMATHESIS = ROOT / "var" / "schemathesis-venv" / "bin" / "schemathesis"
SEED = 20261204
MAX_EXAMPLES = 12
CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    )
)
RUN_LIMIT_S = 240

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _schemathesis() -> Path:
    if SCHEMATHESIS.exists():
        return SCHEMATHESIS
    if os.environ.get("CI") == "true":
        pytest.fail(f"{SCHEMATHESIS} is missing: run `make schemathesis` (CI=true: no skipping)")
    pytest.skip(f"{SCHEMATHESIS} is missing: `make schemathesis` installs it")


@pytest.fixture
def live(owner, model_files, tmp_path):
    """A web process and a worker serving one slot, on this test's database."""
    version = onnx_version(owner, model_files, tmp_path, name="clf", version="1")
    make_slot("clf", version, task="classifier")
    with start_worker(env={"MODELMGR_RECONCILE_INTERVAL_S": "3600"}) as worker:
        worker.wait_ready()
        web = WebProcess(
            env={
                **worker_environment(),
                "MODELMGR_WORKER_URL": worker.url,
                "MODELMGR_IMPORT_RUNNER": "false",
            }
        )
        try:
            yield web.start()
        finally:
            web.stop()


def test_the_api_answers_as_its_openapi_schema_says(live, staff, tmp_path):
    tool = _schemathesis()
    token = make_token(staff, name="schemathesis")  # staff: the slot operations too
    command = [
        str(tool),
        "run",
        f"{live.url}/api/v1/openapi.json",
        "--url",
        live.url,
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        CHECKS,
        "--seed",
        str(SEED),
        "--max-examples",
        str(MAX_EXAMPLES),
        "--phases",
        "examples,coverage,fuzzing",
        "--workers",
        "1",
        "--no-shrink",
        "--request-timeout",
        "30",
        "--suppress-health-check",
        "all",
        "--output-truncate",
        "false",
    ]
    result = subprocess.run(
        command,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=RUN_LIMIT_S,
    )
    output = result.stdout + result.stderr
    print(output[-1500:])  # the summary: operations, phases, test cases generated
    assert result.returncode == 0, output[-20000:] + "\n--- web log ---\n" + live.logs()[-5000:]
