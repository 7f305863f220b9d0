"""Several first uploads to a model that does not exist yet, at once, over the real web
process: each one is kept (one registers the model, the others upload into it)."""

from __future__ import annotations

import threading

import httpx

from modelmgr.models import AuditEvent, ModelVersion, RegisteredModel
from tests.conftest import make_token

UPLOADS = 3


def test_concurrent_first_uploads_to_a_new_model_all_succeed(web, owner, model_files, tmp_path):
    token = make_token(owner)
    payloads = [
        model_files.onnx(tmp_path / f"m{i}" / "model.onnx", seed=i).read_bytes()
        for i in range(UPLOADS)
    ]
    barrier = threading.Barrier(UPLOADS)
    answers: dict[int, httpx.Response] = {}

    def upload(i: int) -> None:
        barrier.wait()
        answers[i] = httpx.post(
            f"{web.url}/api/v1/models/racer/versions",
            headers={"Authorization": f"Bearer {token}"},
            data={"version": str(i + 1), "task": "classifier"},
            files={"file": ("model.onnx", payloads[i])},
            timeout=60,
        )

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(UPLOADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = {i: (r.status_code, r.text[:200]) for i, r in sorted(answers.items())}
    assert all(code == 201 for code, _ in statuses.values()), statuses
    model = RegisteredModel.objects.get(owner=owner, name="racer")
    kept = sorted(ModelVersion.objects.filter(model=model).values_list("version", flat=True))
    assert kept == [str(i + 1) for i in range(UPLOADS)]
    assert AuditEvent.objects.filter(action="model.create").count() == 1
