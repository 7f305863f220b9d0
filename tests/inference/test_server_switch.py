"""The real worker process switching slots: NDJSON progress, all-or-nothing, restarts."""

from __future__ import annotations

import json
import threading

import httpx
import pytest

from modelmgr.models import Slot, UsageBucket
from tests.inference.support import (
    GATE_RUNTIMES,
    NO_PINS,
    ONNX_SIGNATURE,
    corrupt,
    eventually,
    gate_version,
    make_slot,
    onnx_version,
    waiting_loads,
)
from tests.workerproc import start_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
X = [[0.1, 0.2, 0.3, 0.4]]
QUIET = {
    "MODELMGR_WORKER_RUNTIMES": ",".join(GATE_RUNTIMES),
    "MODELMGR_RECONCILE_INTERVAL_S": "3600",
    "MODELMGR_STATS_FLUSH_S": "3600",
}


def switch(client: httpx.Client, slots: dict, switch_id: str = "sw") -> list[dict]:
    """POST /switch and read the NDJSON lines as they stream."""
    events = []
    with client.stream("POST", "/switch", json={"switch_id": switch_id, "slots": slots}) as r:
        assert r.status_code == 200 and r.headers["content-type"] == "application/x-ndjson"
        for line in r.iter_lines():
            if line:
                events.append(json.loads(line))
    return events


def serving(client: httpx.Client) -> dict[str, str]:
    return {slot: s["ref"] for slot, s in client.get("/status").json()["slots"].items()}


@pytest.fixture
def two_versions(owner, model_files, tmp_path):
    v1 = onnx_version(owner, model_files, tmp_path, version="1")
    v2 = onnx_version(owner, model_files, tmp_path, version="2", seed=1)
    make_slot("det", v1)
    return v1, v2


def test_switch_streams_its_phases_in_order(two_versions):
    v1, v2 = two_versions
    with start_worker(env=QUIET) as worker, worker.client() as client:
        worker.wait_ready()
        events = switch(client, {"det": v2.pk})
        assert [(e["event"], e.get("phase"), e.get("slot"), e.get("ref")) for e in events] == [
            ("phase", "validating", "det", "clf@2"),
            ("phase", "loading", "det", "clf@2"),
            ("phase", "warming", "det", "clf@2"),
            ("phase", "swapping", "det", "clf@2"),
            ("slot_done", None, "det", "clf@2"),
            ("phase", "unloading", "det", "clf@1"),
            ("result", None, None, None),
        ]
        phases = [e for e in events if e["event"] == "phase"]
        assert [e["ts"] for e in phases] == sorted(e["ts"] for e in phases)
        assert events[-1]["ok"] is True and events[-1]["slots"]["det"]["ref"] == "clf@2"
        assert {"load_ms", "warmup_ms"} <= set(events[-1]["slots"]["det"])
        assert client.post("/infer/det", json={"inputs": {"x": X}}).json()["model"] == "clf@2"


def test_switch_with_a_corrupt_artifact_changes_no_slot(two_versions, owner, model_files, tmp_path):
    v1, v2 = two_versions
    other1 = onnx_version(owner, model_files, tmp_path, name="other", version="1")
    other2 = onnx_version(owner, model_files, tmp_path, name="other", version="2", seed=3)
    make_slot("cls", other1)
    corrupt(v2)
    with start_worker(env=QUIET) as worker, worker.client() as client:
        worker.wait_ready()
        events = switch(client, {"cls": other2.pk, "det": v2.pk})
        assert events[-1] == {
            "event": "result",
            "ok": False,
            "errors": {"det": "artifact model.onnx of clf@2 is corrupt (sha256 mismatch)"},
        }
        assert serving(client) == {"cls": "other@1", "det": "clf@1"}
        eventually(
            lambda: (
                sorted(m["ref"] for m in client.get("/status").json()["models"])
                == ["clf@1", "other@1"]
            ),
            what="other@2 unloaded after the failed switch",
        )


def test_blob_corrupted_after_its_first_use_is_refused_on_the_next_switch_to_it(two_versions):
    v1, v2 = two_versions
    with start_worker(env=QUIET) as worker, worker.client() as client:
        worker.wait_ready()
        assert switch(client, {"det": v2.pk}, "to-2")[-1]["ok"]
        assert switch(client, {"det": v1.pk}, "back-to-1")[-1]["ok"]
        corrupt(v2)  # in place, same size: the worker cache hardlinks this very file
        events = switch(client, {"det": v2.pk}, "to-2-again")
        assert events[-1] == {
            "event": "result",
            "ok": False,
            "errors": {"det": "artifact model.onnx of clf@2 is corrupt (sha256 mismatch)"},
        }
        assert serving(client) == {"det": "clf@1"}
        assert client.post("/infer/det", json={"inputs": {"x": X}}).json()["model"] == "clf@1"


def test_switch_to_a_version_with_a_wrong_signature_changes_no_slot(
    two_versions, owner, model_files, tmp_path
):
    lying = {
        "inputs": [{"name": "features", "shape": ["batch", 4], "dtype": "float32"}],
        "outputs": ONNX_SIGNATURE["outputs"],
    }
    bad = onnx_version(owner, model_files, tmp_path, version="3", signature=lying)
    with start_worker(env=QUIET) as worker, worker.client() as client:
        worker.wait_ready()
        events = switch(client, {"det": bad.pk})
        assert events[-1]["ok"] is False
        assert events[-1]["errors"]["det"].startswith(
            "loading clf@3 failed: the declared signature does not match the ONNX graph"
        )
        assert serving(client) == {"det": "clf@1"}


def test_concurrent_switches_run_one_after_the_other(two_versions, owner, tmp_path):
    gate = tmp_path / "gate"
    slow = gate_version(owner, name="slow", gate=gate)
    v1, v2 = two_versions
    results: dict[str, list[dict]] = {}
    with start_worker(env=QUIET) as worker, worker.client() as client:
        worker.wait_ready()
        first = threading.Thread(
            target=lambda: results.update(first=switch(worker.client(), {"slow": slow.pk}, "first"))
        )
        first.start()
        eventually(lambda: waiting_loads(gate) == 1, what="the first switch loading")
        second = threading.Thread(
            target=lambda: results.update(second=switch(worker.client(), {"det": v2.pk}, "second"))
        )
        second.start()
        eventually(
            lambda: client.get("/status").json()["control"]["waiting_switches"] == 1,
            what="the second switch queued behind the first",
        )
        assert serving(client) == {"det": "clf@1"}  # it waits: nothing of it happened yet
        gate.touch()
        first.join()
        second.join()
        first_done = max(e["ts"] for e in results["first"] if e["event"] == "phase")
        second_start = min(e["ts"] for e in results["second"] if e["event"] == "phase")
        assert second_start >= first_done
        assert results["first"][-1]["ok"] and results["second"][-1]["ok"]
        assert serving(client) == {"det": "clf@2", "slow": "slow@1"}


def test_hung_load_fails_the_switch_after_the_load_timeout(two_versions, owner, tmp_path):
    gate = tmp_path / "gate"
    stuck = gate_version(owner, name="stuck", gate=gate)
    v1, v2 = two_versions
    with (
        start_worker(env={**QUIET, "MODELMGR_LOAD_TIMEOUT_S": "1"}) as worker,
        worker.client() as client,
    ):
        worker.wait_ready()
        events = switch(client, {"det": v2.pk, "other": stuck.pk})
        assert events[-1] == {
            "event": "result",
            "ok": False,
            "errors": {"other": "load of stuck@1 timed out after 1 s"},
        }
        assert serving(client) == {"det": "clf@1"}
        gate.touch()  # the abandoned load ends; its model is discarded, never served
        assert switch(client, {"det": v2.pk}, "after")[-1]["ok"]
        eventually(
            lambda: [m["ref"] for m in client.get("/status").json()["models"]] == ["clf@2"],
            what="only clf@2 loaded",
        )


def test_killed_worker_restores_the_same_slots_from_the_database(
    two_versions, owner, model_files, tmp_path
):
    v1, v2 = two_versions
    make_slot("cls", onnx_version(owner, model_files, tmp_path, name="cls", seed=5))
    with start_worker(env=QUIET) as worker, worker.client() as client:
        worker.wait_ready()
        before = serving(client)
        worker.kill()
        worker.restart()
        worker.wait_ready()
        assert serving(client) == before == {"cls": "cls@1", "det": "clf@1"}
        assert client.post("/infer/cls", json={"inputs": {"x": X}}).status_code == 200


def test_committed_switch_survives_a_crash_and_an_uncommitted_one_does_not(
    two_versions, owner, model_files, tmp_path
):
    v1, v2 = two_versions
    v3 = onnx_version(owner, model_files, tmp_path, version="3", seed=2)
    with start_worker(env=QUIET) as worker, worker.client() as client:
        worker.wait_ready()
        assert switch(client, {"det": v2.pk}, "a")[-1]["ok"]
        Slot.objects.filter(name="det").update(active_version=v2)  # the web commits
        assert switch(client, {"det": v3.pk}, "b")[-1]["ok"]  # ... and crashes before this one
        worker.kill()
        worker.restart()
        worker.wait_ready()
        assert serving(client) == {"det": "clf@2"}


def test_database_wins_after_the_grace_on_a_nudge(two_versions):
    v1, v2 = two_versions
    with (
        start_worker(env={**QUIET, "MODELMGR_SWITCH_GRACE_S": "0"}) as worker,
        worker.client() as client,
    ):
        worker.wait_ready()
        assert switch(client, {"det": v2.pk})[-1]["ok"]  # never committed
        assert client.post("/reconcile").json() == {
            "changed": {"det": "clf@1"},
            "errors": {},
            "pins": NO_PINS,
        }
        Slot.objects.filter(name="det").update(active_version=v2)  # a change made elsewhere
        assert client.post("/reconcile?wait=0").status_code == 202
        eventually(lambda: serving(client) == {"det": "clf@2"}, what="the nudged reconcile")


def test_sigterm_finishes_gracefully_and_flushes_usage(two_versions):
    v1, _ = two_versions
    with start_worker(env=QUIET) as worker, worker.client() as client:
        worker.wait_ready()
        for _ in range(5):
            assert client.post("/infer/det", json={"inputs": {"x": X}}).status_code == 200
        assert client.post("/infer/det", json={"inputs": {"x": [[1]]}}).status_code == 422
        assert not UsageBucket.objects.exists()  # flushes every hour: none yet
        assert worker.terminate() == 0
        assert "inference worker" in worker.logs() and "stopped" in worker.logs()
    (row,) = UsageBucket.objects.all()
    # the 422 is a refused input, not a model error
    assert (row.slot_name, row.version_id, row.count, row.errors, row.refused) == (
        "det",
        v1.pk,
        6,
        0,
        1,
    )
    assert sum(row.histogram) == 5


def test_32_clients_see_no_failed_request_across_100_swaps(two_versions):
    v1, v2 = two_versions
    body = json.dumps({"inputs": {"x": X}}).encode()
    stop, failures, models = threading.Event(), [], set()
    with start_worker(env=QUIET) as worker, worker.client() as control:
        worker.wait_ready()

        def robot():
            with worker.client(timeout=30) as client:
                while not stop.is_set():
                    try:
                        r = client.post(
                            "/infer/det", content=body, headers={"content-type": "application/json"}
                        )
                        if r.status_code == 200:
                            models.add(r.json()["model"])
                        else:
                            failures.append(f"{r.status_code} {r.text}")
                    except httpx.HTTPError as exc:
                        failures.append(repr(exc))

        robots = [threading.Thread(target=robot) for _ in range(32)]
        for thread in robots:
            thread.start()
        try:
            for i in range(100):
                target = v2 if i % 2 == 0 else v1
                assert switch(control, {"det": target.pk}, f"swap-{i}")[-1]["ok"]
        finally:
            stop.set()
            for thread in robots:
                thread.join()
        assert failures == []
        assert models == {"clf@1", "clf@2"}
        assert serving(control) == {"det": "clf@1"}
