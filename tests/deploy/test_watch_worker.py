"""Health-gated switches end to end against a real worker subprocess.

A switch to a release that fails on part of the traffic rolls back by itself within
its window: the old version serves again, no request fails after the rollback, no
request that the old version could answer failed at any time (the switch machinery
drops nothing), the audit trail names the figures, and every page hears of it. A
healthy release passes its window and stays.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from asgiref.sync import async_to_sync

from modelmgr.models import AuditEvent, Slot, SwitchWatch
from tests.deploy.live import EventsListener, live_worker, switch
from tests.deploy.watchfiles import HIGH, LOW, failing_version
from tests.inference.support import eventually, make_slot

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def fast_watch(settings):
    settings.MODELMGR_STATS_FLUSH_S = 0.2  # what the test worker flushes at (tests.deploy.live)
    settings.MODELMGR_WATCH_POLL_S = 0.2
    return settings


class Traffic:
    """A robot calling the worker's /infer/svc, alternating an input every release
    answers (LOW) and one a bad release fails on (HIGH); every answer is kept."""

    def __init__(self, url: str):
        self.url = url
        self.answers: list[tuple[str, int, str | None]] = []  # (input, status, model)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as client:
            n = 0
            while not self._stop.is_set():
                kind = "high" if n % 2 else "low"
                inputs = HIGH if kind == "high" else LOW
                response = client.post("/infer/svc", json={"inputs": {"x": inputs}})
                model = response.json().get("model") if response.status_code == 200 else None
                self.answers.append((kind, response.status_code, model))
                n += 1
                time.sleep(0.005)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def mark(self) -> int:
        return len(self.answers)

    def wait_for_more(self, start: int, n: int) -> None:
        eventually(lambda: len(self.answers) >= start + n, what=f"{n} more answers")


def watch_events(listener: EventsListener, *, until_state: str, limit: float = 60.0):
    async def drain() -> list[dict]:
        import asyncio

        got = []
        while True:
            message = await asyncio.wait_for(listener.layer.receive(listener.channel), limit)
            if message.get("type") != "watch.update":
                continue
            got.append(message["watch"])
            if message["watch"]["state"] == until_state:
                return got

    return async_to_sync(drain)()


def finished(watch_id: int) -> SwitchWatch | None:
    watch = SwitchWatch.objects.get(pk=watch_id)
    return watch if watch.state != "running" else None


def test_a_failing_release_rolls_back_by_itself_and_nothing_fails_after(
    api, fast_watch, owner, tmp_path
):
    good = failing_version(owner, tmp_path, version="1", threshold=1e9, seed=0)
    bad = failing_version(owner, tmp_path, version="2", threshold=0.5, seed=1)
    make_slot("svc", good, task="classifier")
    listener = EventsListener()
    try:
        with live_worker(fast_watch) as worker, Traffic(worker.url) as traffic:
            traffic.wait_for_more(0, 20)  # the old version has a baseline
            time.sleep(0.5)  # ... flushed into usage rows
            response = switch(
                api,
                {
                    "slots": {"svc": "svc@2"},
                    "watch": {"window_s": 60, "max_error_rate": 0.05, "min_requests": 10},
                },
            )
            assert response.status_code == 200, response.content
            watch_id = response.json()["watches"]["svc"]
            watch = eventually(lambda: finished(watch_id), what="the watch's verdict")
            after_rollback = traffic.mark()
            traffic.wait_for_more(after_rollback, 40)
            events = watch_events(listener, until_state="rolled_back")
    finally:
        listener.close()

    assert watch.state == "rolled_back", watch.verdict
    # Within its window, as soon as min_requests had come in.
    assert watch.finished_at < watch.deadline_at
    assert "error rate" in watch.verdict and "> 0.05" in watch.verdict
    slot = Slot.objects.get(name="svc")
    assert (slot.active_version_id, slot.previous_version_id) == (good.pk, bad.pk)

    later = traffic.answers[after_rollback:]
    assert later and all(status == 200 for _, status, _ in later), later[:5]
    assert {model for _, _, model in later} == {"svc@1"}
    # The only failures are the bad release's own: inputs above its threshold.
    failed = [(kind, status) for kind, status, _ in traffic.answers if status != 200]
    assert failed and {kind for kind, _ in failed} == {"high"}
    assert all(status == 500 for _, status in failed), failed[:5]

    audit = AuditEvent.objects.get(action="slot.rollback.auto")
    assert audit.outcome == "ok" and audit.actor_label == "system (health watch)"
    assert audit.before == {"svc": "svc@2"} and audit.after["svc"] == "svc@1"
    assert audit.after["reason"] == watch.verdict
    assert audit.after["figures"]["count"] >= 10 and audit.after["figures"]["errors"] > 0
    assert AuditEvent.objects.filter(action="slot.watch.start", target="svc").count() == 1
    assert events[-1]["id"] == watch_id and events[-1]["verdict"] == watch.verdict

    listed = api.get("/api/v1/slots/svc/watches").json()
    assert listed[0]["state"] == "rolled_back" and listed[0]["figures"]["errors"] > 0


def test_a_healthy_release_passes_its_window_and_stays(api, fast_watch, owner, tmp_path):
    first = failing_version(owner, tmp_path, version="1", threshold=1e9, seed=0)
    failing_version(owner, tmp_path, version="3", threshold=1e9, seed=2)
    make_slot("svc", first, task="classifier")
    with live_worker(fast_watch) as worker, Traffic(worker.url) as traffic:
        traffic.wait_for_more(0, 10)
        response = switch(
            api,
            {
                "slots": {"svc": "svc@3"},
                "watch": {
                    "window_s": 2,
                    "max_error_rate": 0.05,
                    "max_p95_ratio": 1000,
                    "min_requests": 5,
                },
            },
        )
        assert response.status_code == 200, response.content
        watch_id = response.json()["watches"]["svc"]
        watch = eventually(lambda: finished(watch_id), what="the watch's verdict")

    assert watch.state == "passed", watch.verdict
    assert watch.verdict.startswith("healthy: error rate 0.00")
    assert watch.figures["count"] >= 5 and watch.figures["errors"] == 0
    assert Slot.objects.get(name="svc").active_version.ref == "svc@3"
    assert all(status == 200 for _, status, _ in traffic.answers)
    audit = AuditEvent.objects.get(action="slot.watch.healthy")
    assert audit.target == "svc" and audit.after["verdict"] == watch.verdict
    assert not AuditEvent.objects.filter(action="slot.rollback.auto").exists()
    shown = api.get(f"/api/v1/switch/watches/{watch_id}").json()
    assert shown["state"] == "passed" and shown["version"].endswith("/svc@3")


def test_a_streamed_watched_switch_names_its_watch_on_the_done_line(
    api, fast_watch, owner, tmp_path
):
    from tests.api.test_switch_stream import lines_of, switch_streamed

    first = failing_version(owner, tmp_path, version="1", threshold=1e9, seed=0)
    failing_version(owner, tmp_path, version="3", threshold=1e9, seed=2)
    make_slot("svc", first, task="classifier")
    with live_worker(fast_watch):
        body = {"slots": {"svc": "svc@3"}, "watch": {"window_s": 1, "max_error_rate": 0.1}}
        events = list(lines_of(switch_streamed(api, body)))
        done = events[-1]
        assert done["event"] == "done" and done["ok"] is True, done
        watch = eventually(lambda: finished(done["watches"]["svc"]), what="the verdict")
    # No traffic in the window: not judged, and the version stays.
    assert watch.state == "inconclusive"
    assert Slot.objects.get(name="svc").active_version.ref == "svc@3"
