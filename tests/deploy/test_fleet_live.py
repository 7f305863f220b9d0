"""Several real workers behind one web process: they register and heartbeat, a switch
fans out in two phases (all or nothing), the web's predict spreads over the healthy
ones, and a killed worker is marked down, then comes back and converges."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import httpx
import pytest
from django.test import Client

from modelmgr.deploy.fleet import fleet_members
from modelmgr.models import AuditEvent, Slot
from modelmgr.models import Worker as WorkerRow
from tests.conftest import make_token
from tests.deploy.live import WORKER_ENV, EventsListener, predict, switch
from tests.inference.support import eventually, gate_version, make_slot
from tests.workerproc import WorkerProcess, start_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

FLEET_ENV = {
    **WORKER_ENV,
    "MODELMGR_WORKER_HEARTBEAT_S": "0.2",
    "MODELMGR_RECONCILE_INTERVAL_S": "0.5",
}


@contextlib.contextmanager
def fleet(settings, count: int, env: dict | None = None) -> Iterator[list[WorkerProcess]]:
    """``count`` ready workers named w1, w2, ... on this test's database, registered;
    ``env`` is added to each one's environment (an S3 store, for instance)."""
    settings.MODELMGR_FLEET_REFRESH_S = 0.05
    with contextlib.ExitStack() as stack:
        workers = [
            stack.enter_context(
                start_worker(env={**FLEET_ENV, **(env or {}), "MODELMGR_WORKER_NAME": f"w{i}"})
            )
            for i in range(1, count + 1)
        ]
        for worker in workers:
            worker.wait_ready()
        settings.MODELMGR_WORKER_URL = workers[0].url
        eventually(lambda: WorkerRow.objects.count() == count, what="every worker registered")
        yield workers


def served(worker: WorkerProcess, slot: str) -> str | None:
    status = httpx.get(f"{worker.url}/status", timeout=10).json()
    return (status["slots"].get(slot) or {}).get("ref")


def statuses(api) -> dict[str, bool]:
    response = api.get("/api/v1/status")
    assert response.status_code == 200, response.content
    return {w["name"]: w["up"] for w in response.json()["workers"]}


def patch_group(staff, group: str):
    """Placement is a slot setting: staff change it."""
    client = Client(HTTP_AUTHORIZATION=f"Bearer {make_token(staff)}")
    body = json.dumps({"worker_group": group})
    return client.patch("/api/v1/slots/g", body, content_type="application/json")


@pytest.fixture
def gates(owner):
    one = gate_version(owner, name="g", version="1", scale=2.0)
    make_slot("g", one)
    return one


def test_a_switch_fans_out_to_every_worker_and_the_audit_names_them(api, settings, owner, gates):
    two = gate_version(owner, name="g", version="2", scale=3.0)
    with fleet(settings, 2) as workers:
        assert statuses(api) == {"w1": True, "w2": True}
        assert [served(w, "g") for w in workers] == ["g@1", "g@1"]
        listener = EventsListener()
        try:
            response = switch(api, {"g": "g@2"})
            events = listener.switch_events()
        finally:
            listener.close()
        assert response.status_code == 200, response.content
        assert [served(w, "g") for w in workers] == ["g@2", "g@2"]
        # Progress flows from both workers: phase 1's loads, then phase 2's swaps.
        seen = {(e.get("worker"), e.get("phase") or e["event"]) for e in events}
        for name in ("w1", "w2"):
            assert {(name, "loading"), (name, "swapping"), (name, "slot_done")} <= seen
        last_load = max(i for i, e in enumerate(events) if e.get("phase") == "warming")
        first_swap = min(i for i, e in enumerate(events) if e.get("phase") == "swapping")
        assert last_load < first_swap  # nobody swaps before every worker warmed up
        for _ in range(6):  # whichever worker answers, it is the new version
            answer = predict(api, "g")
            assert answer.status_code == 200 and answer.json()["model"] == "g@2"
    assert Slot.objects.get(name="g").active_version_id == two.pk
    audit = AuditEvent.objects.get(action="slot.switch")
    assert audit.outcome == "ok" and audit.after["workers"] == {"w1": "ok", "w2": "ok"}
    # Stopped cleanly, they signed off: down at once, not after missed heartbeats.
    assert [member.up for member in fleet_members()] == [False, False]


def test_one_worker_failing_phase_one_changes_nothing_anywhere(api, settings, owner, gates):
    gate_version(owner, name="g", version="2", scale=3.0, fail_on_worker="w2")
    with fleet(settings, 2) as workers:
        response = switch(api, {"g": "g@2"})
        assert response.status_code == 409, response.content
        detail = response.json()["detail"]
        assert "worker w2" in detail and "this load fails on worker w2" in detail
        assert [served(w, "g") for w in workers] == ["g@1", "g@1"]
        # w1 had loaded g@2 in phase 1: the abort let it go again.
        models = httpx.get(f"{workers[0].url}/status", timeout=10).json()["models"]
        assert [m["ref"] for m in models if m["state"] == "ready"] == ["g@1"]
        answer = predict(api, "g")
        assert answer.status_code == 200 and answer.json()["model"] == "g@1"
    assert Slot.objects.get(name="g").active_version_id == gates.pk
    audit = AuditEvent.objects.get(action="slot.switch")
    assert audit.outcome == "error" and "worker w2" in audit.error
    assert audit.after["workers"]["w1"] == "aborted"
    assert audit.after["workers"]["w2"].startswith("failed: ")


def test_a_killed_worker_costs_no_prediction_is_marked_down_and_converges_back(
    api, settings, owner, gates
):
    gate_version(owner, name="g", version="2", scale=3.0)
    body = json.dumps({"inputs": {"x": [[1.0, 2.0, 3.0, 4.0]]}})
    with fleet(settings, 3) as workers:
        for _ in range(9):
            assert predict(api, "g").status_code == 200
        workers[1].kill()
        answers = [predict(api, "g").status_code for _ in range(60)]
        assert answers == [200] * 60  # the others keep serving, even before it is down
        eventually(lambda: statuses(api) == {"w1": True, "w2": False, "w3": True}, what="down")
        # A switch while it is down goes to the workers that are up.
        response = switch(api, {"g": "g@2"})
        assert response.status_code == 200, response.content
        assert [served(workers[0], "g"), served(workers[2], "g")] == ["g@2", "g@2"]
        workers[1].restart()
        workers[1].wait_ready()
        assert served(workers[1], "g") == "g@2"  # restored from the database
        eventually(lambda: statuses(api)["w2"], what="w2 up again")
        direct = httpx.post(f"{workers[1].url}/infer/g", content=body, timeout=10)
        assert direct.status_code == 200 and direct.json()["model"] == "g@2"
    audit = AuditEvent.objects.get(action="slot.switch")
    assert audit.after["workers"] == {"w1": "ok", "w3": "ok"}


def test_a_slot_placed_on_a_group_is_loaded_only_by_that_group(api, settings, owner, staff, gates):
    with contextlib.ExitStack() as stack:
        settings.MODELMGR_FLEET_REFRESH_S = 0.05
        cpu = stack.enter_context(start_worker(env={**FLEET_ENV, "MODELMGR_WORKER_NAME": "cpu1"}))
        gpu = stack.enter_context(
            start_worker(
                env={**FLEET_ENV, "MODELMGR_WORKER_NAME": "gpu1", "MODELMGR_WORKER_GROUP": "gpu"}
            )
        )
        cpu.wait_ready()
        gpu.wait_ready()
        settings.MODELMGR_WORKER_URL = cpu.url
        eventually(lambda: WorkerRow.objects.count() == 2, what="both registered")
        patched = patch_group(staff, "gpu")
        assert patched.status_code == 200 and patched.json()["worker_group"] == "gpu"
        eventually(lambda: served(cpu, "g") is None, what="cpu1 unloading g")
        assert served(gpu, "g") == "g@1"
        two = gate_version(owner, name="g", version="2", scale=3.0)
        response = switch(api, {"g": "g@2"})
        assert response.status_code == 200, response.content
        assert (served(cpu, "g"), served(gpu, "g")) == (None, "g@2")
        for _ in range(4):  # the web sends the slot's predictions to gpu1 only
            answer = predict(api, "g")
            assert answer.status_code == 200 and answer.json()["model"] == "g@2"
        bad = patch_group(staff, "no way")
        assert bad.status_code == 422 and "worker_group" in bad.json()["detail"]
    assert Slot.objects.get(name="g").active_version_id == two.pk
    assert AuditEvent.objects.get(action="slot.switch").after["workers"] == {"gpu1": "ok"}
