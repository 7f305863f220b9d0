"""Canary and shadow against a real worker: who answers, sticky client keys, a shadow's
answers never reaching the caller, per-arm statistics, promote and abort under traffic."""

from __future__ import annotations

import json
import threading

import httpx
import numpy as np
import pytest

from modelmgr.models import AuditEvent, Slot
from tests.conftest import make_token
from tests.deploy.live import live_worker, predict
from tests.inference.support import eventually, make_slot, onnx_version, registered
from tests.registry.factories import make_version

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
X = [[0.1, -0.4, 0.3, 0.9]]


@pytest.fixture
def clf(owner, model_files, tmp_path):
    """Slot clf serving clf@1; clf@2 answers differently; clf@3 is clf@1's weights again."""
    versions = {
        "1": onnx_version(owner, model_files, tmp_path, name="clf", version="1", seed=0),
        "2": onnx_version(owner, model_files, tmp_path, name="clf", version="2", seed=1),
        "3": onnx_version(owner, model_files, tmp_path, name="clf", version="3", seed=0),
    }
    make_slot("clf", versions["1"], task="classifier")
    return versions


def post(api, path: str, body: dict | None = None):
    return api.post(path, json.dumps(body or {}), content_type="application/json")


def canary(api, ref: str, share: float) -> bool:
    response = post(api, "/api/v1/slots/clf/canary", {"version": ref, "share": share})
    return response.status_code == 200


def ask(api, key: str | None = None) -> dict:
    headers = {"HTTP_X_CLIENT_KEY": key} if key else {}
    response = api.generic(
        "POST",
        "/api/v1/slots/clf/predict",
        json.dumps({"inputs": {"x": X}}),
        content_type="application/json",
        **headers,
    )
    assert response.status_code == 200, response.content
    return response.json()


def test_a_canary_at_20_percent_answers_about_a_fifth_and_a_client_key_sticks(api, settings, clf):
    with live_worker(settings):
        set_ = post(api, "/api/v1/slots/clf/canary", {"version": "clf@2", "share": 0.2})
        assert set_.status_code == 200, set_.content
        assert set_.json()["after"] == {
            "active": "clf@1",
            "canary": "clf@2",
            "canary_share": 0.2,
            "shadow": None,
        }
        answered = [ask(api)["model"] for _ in range(1000)]
        canary = answered.count("clf@2")
        assert answered.count("clf@1") + canary == 1000
        assert 140 <= canary <= 260  # binomial(1000, 0.2): ±4.7 standard deviations
        for key in ("robot-7", "robot-8", "robot-9"):
            arms = {ask(api, key)["model"] for _ in range(40)}
            assert len(arms) == 1, f"{key} got both arms: {arms}"
        stats = api.get("/api/v1/slots/clf/arms").json()["arms"]
        assert stats["canary"]["share"] == 0.2 and stats["canary"]["ref"] == "clf@2"
        assert stats["primary"]["requests"] + stats["canary"]["requests"] == 1120
        assert stats["canary"]["errors"] == 0 and stats["canary"]["p95_ms"] > 0
    row = Slot.objects.get(name="clf")
    assert (row.canary_version_id, row.canary_share) == (clf["2"].pk, 0.2)
    audit = AuditEvent.objects.get(action="slot.canary")
    assert audit.outcome == "ok" and audit.after["canary"] == "clf@2"


def test_v2_infer_on_the_serving_port_follows_the_canary(api, owner, settings, clf):
    with live_worker(settings) as worker:
        assert canary(api, "clf@2", 1)
        body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": X[0]}]}
        headers = {"authorization": f"Bearer {make_token(owner)}", "x-client-key": "arm"}
        answer = httpx.post(f"{worker.serve_url}/v2/models/clf/infer", json=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_version"] == "2"


def test_a_shadow_never_answers_and_its_agreement_is_counted(api, settings, clf):
    with live_worker(settings):
        alone = ask(api)["outputs"]["y"]
        assert post(api, "/api/v1/slots/clf/shadow", {"version": "clf@2"}).status_code == 200
        for _ in range(30):
            answer = ask(api)
            assert answer["model"] == "clf@1"
            np.testing.assert_allclose(answer["outputs"]["y"], alone, rtol=1e-6)

        def shadow_figures(count: int):
            shadow = api.get("/api/v1/slots/clf/arms").json()["arms"]["shadow"]
            return shadow if shadow["compared"] >= count else None

        shadow = eventually(lambda: shadow_figures(30), what="30 shadow runs compared")
        assert shadow["ref"] == "clf@2" and shadow["requests"] == 30 and shadow["errors"] == 0
        assert shadow["agreement"] == 0.0  # other weights: outputs differ
        # The same weights as the primary agree on every request.
        assert post(api, "/api/v1/slots/clf/shadow", {"version": "clf@3"}).status_code == 200
        for _ in range(10):
            assert ask(api)["model"] == "clf@1"
        shadow = eventually(lambda: shadow_figures(10), what="10 shadow runs compared")
        assert shadow["ref"] == "clf@3"
        assert shadow["agreement"] == 1.0 and shadow["argmax_agreement"] == 1.0
    assert Slot.objects.get(name="clf").shadow_version_id == clf["3"].pk


def test_a_failing_shadow_never_fails_the_caller(api, owner, model_files, tmp_path, settings, clf):
    """A shadow taking 3 features cannot run the slot's 4-feature requests: its errors
    are its statistic; every caller still gets the primary's answer."""
    data = model_files.onnx(tmp_path / "three.onnx", in_features=3).read_bytes()
    signature = {
        "inputs": [{"name": "x", "shape": ["batch", 3], "dtype": "float32"}],
        "outputs": [{"name": "y", "shape": ["batch", 2], "dtype": "float32"}],
    }
    make_version(
        registered(owner, "three"),
        "1",
        files={"model.onnx": data},
        framework="onnx",
        signature=signature,
    )
    with live_worker(settings):
        assert post(api, "/api/v1/slots/clf/shadow", {"version": "three@1"}).status_code == 200
        assert {ask(api)["model"] for _ in range(20)} == {"clf@1"}

        def failed():
            shadow = api.get("/api/v1/slots/clf/arms").json()["arms"]["shadow"]
            return shadow if shadow["errors"] >= 20 else None

        shadow = eventually(failed, what="20 failed shadow runs")
    assert shadow["requests"] == 20 and shadow["compared"] == 0 and shadow["agreement"] is None


class Traffic:
    """Predictions in a thread while the test changes the slot; every answer recorded."""

    def __init__(self, worker, token: str):
        self.url = f"{worker.serve_url}/api/v1/slots/clf/predict"
        self.headers = {"authorization": f"Bearer {token}"}
        self.answers: list[tuple[int, str]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self) -> None:
        with httpx.Client(headers=self.headers, timeout=60) as client:
            while not self.stop.is_set():
                r = client.post(self.url, json={"inputs": {"x": X}})
                self.answers.append((r.status_code, r.json().get("model", r.text)))

    def __enter__(self) -> Traffic:
        self.thread.start()
        eventually(lambda: len(self.answers) >= 5, what="traffic flowing")
        return self

    def __exit__(self, *exc) -> None:
        eventually(lambda: len(self.answers) >= self.seen + 5, what="traffic after the change")
        self.stop.set()
        self.thread.join(60)

    def mark(self) -> None:
        self.seen = len(self.answers)


def test_promote_and_abort_change_what_serves_without_a_failed_request(api, owner, settings, clf):
    with live_worker(settings) as worker:
        assert canary(api, "clf@2", 0.5)
        assert post(api, "/api/v1/slots/clf/shadow", {"version": "clf@3"}).status_code == 200
        with Traffic(worker, make_token(owner)) as traffic:
            promoted = post(api, "/api/v1/slots/clf/promote")
            assert promoted.status_code == 200, promoted.content
            traffic.mark()
        assert {status for status, _ in traffic.answers} == {200}
        assert {model for _, model in traffic.answers[traffic.seen :]} == {"clf@2"}
        row = Slot.objects.get(name="clf")
        assert (row.active_version_id, row.previous_version_id) == (clf["2"].pk, clf["1"].pk)
        assert row.canary_version_id is None and row.shadow_version_id == clf["3"].pk

        assert canary(api, "clf@1", 1)
        assert predict(api, "clf", {"x": X}).json()["model"] == "clf@1"
        with Traffic(worker, make_token(owner)) as traffic:
            assert post(api, "/api/v1/slots/clf/abort").status_code == 200
            traffic.mark()
        assert {status for status, _ in traffic.answers} == {200}
        assert {model for _, model in traffic.answers[traffic.seen :]} == {"clf@2"}
        arms = api.get("/api/v1/slots/clf/arms").json()["arms"]
        assert set(arms) == {"primary"}
    row = Slot.objects.get(name="clf")
    assert row.canary_version_id is None and row.shadow_version_id is None
    actions = list(AuditEvent.objects.order_by("pk").values_list("action", "outcome"))
    assert actions[-2:] == [("slot.canary", "ok"), ("slot.abort", "ok")]
    assert ("slot.promote", "ok") in actions


def test_the_worker_restores_canary_and_shadow_after_a_restart(api, settings, clf):
    with live_worker(settings) as worker:
        assert canary(api, "clf@2", 1)
        assert post(api, "/api/v1/slots/clf/shadow", {"version": "clf@3"}).status_code == 200
        worker.kill()
        worker.restart().wait_ready()
        assert ask(api)["model"] == "clf@2"
        arms = api.get("/api/v1/slots/clf/arms").json()["arms"]
        assert arms["canary"]["serving"] and arms["shadow"]["serving"]


def test_a_promotion_can_carry_a_health_watch(api, settings, clf):
    """A promotion with ``watch`` is watched like a health-gated switch: the promoted
    version, rolled back to the version it replaced on a regression; bad thresholds are
    refused before anything changes."""
    from modelmgr.models import SwitchWatch

    with live_worker(settings):
        assert canary(api, "clf@2", 0.5)
        refused = post(api, "/api/v1/slots/clf/promote", {"watch": {"window_s": 0}})
        assert refused.status_code == 422 and "window_s" in refused.json()["detail"]
        assert Slot.objects.get(name="clf").canary_version_id == clf["2"].pk
        assert not SwitchWatch.objects.exists()

        watch = {"window_s": 2, "max_error_rate": 0.05, "min_requests": 1000}
        promoted = post(api, "/api/v1/slots/clf/promote", {"watch": watch})
        assert promoted.status_code == 200, promoted.content
        row = SwitchWatch.objects.get(pk=promoted.json()["watch"])
        assert (row.version_id, row.previous_version_id) == (clf["2"].pk, clf["1"].pk)
        assert row.state == "running" and row.thresholds["window_s"] == 2
        shown = api.get(f"/api/v1/switch/watches/{row.pk}").json()
        assert shown["previous"].endswith("clf@1")
        assert predict(api, "clf", {"x": X}).json()["model"] == "clf@2"
        # Too few requests for a verdict: the window ends inconclusive, the version stays.
        eventually(
            lambda: SwitchWatch.objects.get(pk=row.pk).state == "inconclusive",
            limit=30,
            what="the promotion's watch ending",
        )
        assert Slot.objects.get(name="clf").active_version_id == clf["2"].pk
