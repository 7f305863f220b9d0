"""Uploading, importing, the admin, and a look at every page (saved as screenshots)."""

from __future__ import annotations

import hashlib
import io
import math
import zipfile
from datetime import timedelta

import pytest
from django.utils import timezone

from modelmgr.models import (
    LATENCY_BUCKETS_MS,
    DownloadJob,
    ModelVersion,
    RegisteredModel,
    Tag,
)
from tests.browser.conftest import log_in, screenshot
from tests.conftest import make_token
from tests.deploy.support import bucket_row
from tests.imports.server import FileServer
from tests.views.support import ingested, serving_slot


def test_upload_shows_progress_to_100_percent_then_the_inspection(
    staff, stack, page, model_files, tmp_path
):
    # A zipped folder a few MB big, so the upload reports progress on its way.
    onnx = model_files.onnx(tmp_path / "mlp.onnx").read_bytes()
    archive = tmp_path / "mlp-folder.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as folder:
        folder.writestr("mlp/model.onnx", onnx)
        folder.writestr("mlp/calibration.bin", bytes(range(256)) * 16384)  # 4 MiB
        folder.writestr("mlp/README.md", b"# tiny mlp\n")
    log_in(page, "stella", "pw-stella")
    page.click("nav >> text=Upload")
    page.wait_for_url("**/models/upload")
    page.evaluate("""() => {
        window.uploadProgress = [];
        document.addEventListener('htmx:xhr:progress', e => window.uploadProgress.push(
            Math.floor(e.detail.loaded / e.detail.total * 100)));
    }""")
    page.set_input_files("#id_file", str(archive))
    page.fill("#id_name", "mlp")
    page.select_option("#id_task", "classifier")
    page.click("text=Metadata: description, tags, metrics, requirements")
    page.fill("#id_tags", "tabular, demo")
    page.fill("#id_val_accuracy", "0.91")
    page.click("#upload-submit")
    page.wait_for_selector("#upload-result .msg.ok")
    assert page.get_attribute("#upload-bar", "aria-valuenow") == "100"
    assert page.inner_text("#upload-percent") == "100%"
    assert max(page.evaluate("window.uploadProgress")) == 100
    assert "Stored mlp@1" in page.inner_text("#upload-result")
    signature = page.inner_text("#inspection .signature")
    assert "x" in signature and "[batch, 4]" in signature and "float32" in signature
    screenshot(page, "upload.png", hide_toasts=True)
    version = ModelVersion.objects.get(model__name="mlp")
    assert sorted(version.files.values_list("path", flat=True)) == [
        "README.md",
        "calibration.bin",
        "model.onnx",
    ]


def test_a_bad_upload_is_red_and_nothing_is_stored(staff, stack, page, tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x08\x07not really protobuf" * 50)
    log_in(page, "stella", "pw-stella")
    page.goto("/models/upload")
    page.set_input_files("#id_file", str(bad))
    page.fill("#id_name", "broken")
    page.click("#upload-submit")
    error = page.wait_for_selector("#upload-result .msg.err")
    assert "Upload refused." in error.inner_text()
    assert page.get_attribute("#upload-bar", "class") == "bar err"
    assert not RegisteredModel.objects.exists()


@pytest.fixture
def file_server():
    server = FileServer().start()
    yield server
    server.stop()


def test_an_import_shows_live_progress_is_interrupted_and_resumes(
    staff, stack, page, model_files, tmp_path, file_server
):
    onnx = model_files.onnx(tmp_path / "mlp.onnx").read_bytes()
    # Pad the download with a second file in a zip so there is something to watch.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as folder:
        folder.writestr("model.onnx", onnx)
        folder.writestr("weights.bin", bytes(range(256)) * 4096)  # 1 MiB
    data = buffer.getvalue()
    file_server.add("/models/tiny.zip", data, hold_after=len(data) // 3)
    digest = hashlib.sha256(data).hexdigest()

    log_in(page, "stella", "pw-stella")
    page.goto("/imports")
    page.fill("#id_url", file_server.url("/models/tiny.zip"))
    page.fill("#id_sha256", digest)
    page.fill("#id_name", "tiny-import")
    page.click("#import-submit")
    job_id = page.wait_for_selector("#import-rows tr.import-row").get_attribute("id")
    row = f"#{job_id}"
    # The server holds the download at a third: the row shows it running, live.
    page.wait_for_selector(f"{row} .badge.running")
    page.wait_for_selector(f"{row} .import-percent:text('33%')")
    screenshot(page, "imports.png")

    page.click(f"{row} button:text('Cancel')")
    page.wait_for_selector(f"{row} .badge.cancelled")
    # Let the held response go (the cancelled download has stopped reading it); the
    # release stays set, so the resumed request is not held again.
    file_server.release.set()
    page.wait_for_selector(f"{row} button:text('Resume')")
    page.click(f"{row} button:text('Resume')")
    page.wait_for_selector(f"{row} .badge.done")
    assert page.get_attribute(f"{row} .bar", "aria-valuenow") == "100"
    assert "tiny-import@1" in page.inner_text(row)
    resumed = [r.header("Range") for r in file_server.requests_for("/models/tiny.zip")]
    assert resumed[0] is None and resumed[-1] and resumed[-1].startswith("bytes=")
    job = DownloadJob.objects.get()
    assert job.sha256 == digest and job.result_version.ref == "tiny-import@1"


def test_an_admin_action_verifies_hashes(staff, stack, page, model_files, tmp_path):
    version = ingested(staff, model_files, tmp_path, name="yolo-small", task="detector")
    log_in(page, "stella", "pw-stella")
    page.goto("/admin/modelmgr/modelversion/")
    page.check(f"input[name='_selected_action'][value='{version.pk}']")
    page.select_option("select[name='action']", "verify_hashes")
    page.click("button[name='index']")
    message = page.wait_for_selector("ul.messagelist li.success")
    assert "Hashes intact: yolo-small@1 (1 file(s))" in message.inner_text()
    screenshot(page, "admin-actions.png", full_page=False)


def _history(version: ModelVersion, slot: str, minutes: int = 45) -> None:
    """Usage rows as the worker flushes them, for the last three quarters of an hour, so
    the plots have a history to draw (the live requests only fill the current minute)."""
    now = timezone.now().replace(second=0, microsecond=0)
    for ago in range(minutes, 0, -1):
        fast = LATENCY_BUCKETS_MS[19 + round(math.sin(ago / 9))]
        slow = LATENCY_BUCKETS_MS[26 + round(2 * math.sin(ago / 6))]
        latencies = [fast] * (40 + round(8 * math.sin(ago / 7))) + [slow] * 3
        bucket_row(version, slot, now - timedelta(minutes=ago), latencies, int(ago % 17 == 0))


_SAMPLES = "document.getElementById('memory-plot')._uplot.data[0].length"
# Counts the live pushes of the workers region from now on; returns the samples so far.
_COUNT_WORKER_PUSHES = f"""() => {{
  window.workerPushes = 0;
  document.addEventListener("htmx:wsAfterMessage", (e) => {{
    if (e.detail.message.includes('id="workers"')) window.workerPushes++;
  }});
  return {_SAMPLES};
}}"""


def _no_polls(route):
    """The page loads; its htmx polls get 204 No Content, which htmx does not swap."""
    if route.request.headers.get("hx-request"):
        route.fulfill(status=204)
    else:
        route.continue_()


def test_every_page_renders_for_an_operator(staff, owner, stack, page, model_files, tmp_path):
    clf = ingested(staff, model_files, tmp_path, name="clf", version="1")
    clf2 = ingested(staff, model_files, tmp_path, name="clf", version="2", seed=1)
    ModelVersion.objects.filter(pk=clf2.pk).update(
        production_ready=True,
        val_accuracy=0.934,
        train_accuracy=0.97,
        test_accuracy=0.921,
        train_loss=0.081,
        python_version="3.11",
        dependencies=["onnxruntime>=1.20"],
        min_vram_mb=256,
        description="retrained on the March data",
    )
    clf.model.tags.add(Tag.objects.create(name="tabular"), Tag.objects.create(name="edge"))
    yolo = ingested(staff, model_files, tmp_path, name="yolo-small", task="detector", seed=2)
    ingested(owner, model_files, tmp_path, name="walker-policy", task="policy", seed=3)
    serving_slot("classifier", clf)
    serving_slot("detector", yolo, task="detector")
    _history(clf2, "classifier")
    stack.sync()
    token = make_token(staff)
    with stack.api(token) as api:
        switched = api.post("/api/v1/switch", json={"classifier": "stella/clf@2"})
        assert switched.status_code == 200, switched.text
        for _ in range(5):
            assert (
                api.post(
                    "/api/v1/slots/classifier/predict",
                    json={"inputs": {"x": [[0.1, 0.2, 0.3, 0.4]]}},
                ).status_code
                == 200
            )

    log_in(page, "stella", "pw-stella")
    page.goto("/models")
    page.wait_for_selector("#model-results td >> text=yolo-small")
    screenshot(page, "models.png")
    page.fill("#f-q", "yolo")
    page.wait_for_function("document.querySelectorAll('#model-results tbody tr').length === 1")

    page.goto("/models/clf?version=2")
    page.wait_for_selector("#latency-plot .uplot")
    screenshot(page, "model-detail.png")

    # The memory chart takes a sample each time the workers region changes. Hold off its
    # 10 s fallback poll so that only the live path (the worker's state relayed over
    # /ws/events/) can add one: a change in the worker must move the chart at once.
    page.route("**/status", _no_polls)
    page.goto("/status")
    page.wait_for_selector("#workers .badge.ok")
    page.wait_for_selector("#memory-plot .uplot")  # the page's own sample
    before = page.evaluate(_COUNT_WORKER_PUSHES)
    with stack.api(token) as api:
        switched = api.post("/api/v1/switch", json={"classifier": "stella/clf@1"})
        assert switched.status_code == 200, switched.text
    page.wait_for_function(f"{_SAMPLES} > {before}")
    page.wait_for_selector("#workers code:text('clf@1')")
    samples, pushes = page.evaluate(f"[{_SAMPLES}, window.workerPushes]")
    assert samples == before + pushes  # one sample per live update, none twice
    page.unroute("**/status", _no_polls)
    screenshot(page, "status.png")

    page.goto("/audit")
    page.wait_for_selector("#audit-rows-live tr")
    screenshot(page, "audit.png")
    # A change made elsewhere (a robot through the API) appears on top, live.
    with stack.api(token) as api:
        changed = api.patch("/api/v1/models/clf/versions/1", json={"production_ready": True})
        assert changed.status_code == 200, changed.text
    page.wait_for_selector("#audit-rows-live tr:first-child code:text('version.update')")
    assert "stella (token robot)" in page.inner_text("#audit-rows-live tr:first-child")
