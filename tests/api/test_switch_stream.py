"""/api/v1/switch streamed as NDJSON (``Accept: application/x-ndjson`` or ``?stream=true``).

Against a real worker subprocess, whose gate runtime holds a load open so the lines can
be seen arriving while it runs: the phases in order, then ``done`` with the plain call's
body; a failing load ends in ``ok: false`` with the plain call's status and causes, the
old version still serving; a refusal known before the worker is asked is plain JSON.
Under daphne (the real web process) lines arrive as they happen without blocking the
event loop, and a client that hangs up does not stop the switch.
"""

from __future__ import annotations

import json

import httpx
import pytest

from modelmgr.models import AuditEvent, Slot
from tests.api.test_switch_worker import assert_still_serving
from tests.deploy.live import PHASES, WORKER_ENV, EventsListener, live_worker, served_by, switch
from tests.inference.support import eventually, gate_version, make_slot, onnx_version
from tests.webproc import WebProcess
from tests.workerproc import worker_environment

pytestmark = pytest.mark.django_db(transaction=True)

NDJSON = "application/x-ndjson"


def switch_streamed(api, body: dict, **extra):
    return api.post(
        "/api/v1/switch", body, content_type="application/json", HTTP_ACCEPT=NDJSON, **extra
    )


def lines_of(response):
    """The response's lines as they come, parsed."""
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == NDJSON
    for chunk in response.streaming_content:
        for line in chunk.splitlines():
            yield json.loads(line)


def read_until(lines, phase: str) -> list[dict]:
    got = []
    for event in lines:
        got.append(event)
        if event.get("phase") == phase:
            return got
    raise AssertionError(f"the stream ended before the {phase} phase: {got}")


@pytest.fixture
def serving(owner, model_files, tmp_path):
    """Slots clf (clf@1) and pol (pol@1), with pol@2 ready to switch to."""
    clf1 = onnx_version(owner, model_files, tmp_path, name="clf", version="1", seed=0)
    pol1 = onnx_version(owner, model_files, tmp_path, name="pol", version="1", seed=2)
    onnx_version(owner, model_files, tmp_path, name="pol", version="2", seed=3)
    make_slot("clf", clf1, task="classifier")
    make_slot("pol", pol1, task="classifier")
    return {"clf1": clf1}


@pytest.mark.worker
def test_lines_arrive_phase_by_phase_while_the_load_runs_then_done_carries_the_plain_body(
    api, settings, owner, serving, tmp_path
):
    gate = tmp_path / "held"
    gate_version(owner, name="slow", version="1", gate=gate)
    listener = EventsListener()
    try:
        with live_worker(settings):
            lines = lines_of(switch_streamed(api, {"clf": "slow@1"}))
            # Read while the load is held open: buffered lines would never come.
            before_the_load_ends = read_until(lines, "loading")
            gate.touch()
            events = before_the_load_ends + list(lines)
            group_events = listener.switch_events()
            plain = switch(api, {"pol": "pol@2"})
            assert served_by(api, "clf") == "slow@1"
    finally:
        listener.close()

    done = events[-1]
    assert done["event"] == "done" and done["ok"] is True
    slot = done["slots"]["clf"]
    assert slot["ref"] == "slow@1" and slot["previous"] == "clf@1" and slot["load_ms"] > 0
    assert slot["warmup_ms"] >= 0 and done["swap_ms"] >= 0 and done["total_ms"] > 0
    # The plain call's body, field for field.
    assert plain.status_code == 200, plain.content
    assert {k for k in done if k != "event"} == set(plain.json())
    assert set(slot) == set(plain.json()["slots"]["pol"])

    # Every line before done is what the browsers' events group got, in the same order.
    assert [{k: v for k, v in e.items() if k != "type"} for e in group_events] == events[:-1]
    assert {e["switch_id"] for e in events} == {done["switch_id"]}
    phases = [e["phase"] for e in events if e["event"] == "phase"]
    assert phases[:2] == ["validating", "loading"] and "swapping" in phases
    assert phases == sorted(phases, key=PHASES.index)
    kinds = [e["event"] for e in events]
    swapping = next(i for i, e in enumerate(events) if e.get("phase") == "swapping")
    assert kinds.index("slot_done") > swapping
    assert kinds[-2:] == ["result", "done"] and events[-2]["ok"] is True

    clf = Slot.objects.get(name="clf")
    assert clf.active_version.ref == "slow@1" and clf.previous_version_id == serving["clf1"].pk
    audit = AuditEvent.objects.filter(action="slot.switch", target="clf").get()
    assert audit.outcome == "ok"


@pytest.mark.worker
def test_a_failing_load_ends_with_ok_false_naming_the_cause_and_the_old_version_serves(
    api, settings, owner, serving
):
    gate_version(owner, name="cursed", version="1", fail="the weights are cursed")
    with live_worker(settings):
        plain = switch(api, {"clf": "cursed@1"})
        events = list(lines_of(switch_streamed(api, {"clf": "cursed@1"})))
        assert_still_serving(api, "clf", serving["clf1"])

    assert plain.status_code == 409, plain.content
    done = events[-1]
    assert done == {
        "event": "done",
        "switch_id": events[0]["switch_id"],
        "ok": False,
        "status": 409,
        "detail": plain.json()["detail"],
        "slots": plain.json()["slots"],
    }
    assert "the weights are cursed" in done["slots"]["clf"]
    assert [e["phase"] for e in events if e["event"] == "phase"][:2] == ["validating", "loading"]
    assert events[-2]["event"] == "result" and events[-2]["ok"] is False
    assert "swapping" not in [e.get("phase") for e in events]
    assert list(AuditEvent.objects.values_list("outcome", flat=True)) == ["error", "error"]


@pytest.mark.worker
def test_a_contract_misfit_is_refused_before_it_starts_as_plain_json(api, settings, serving):
    with live_worker(settings):
        Slot.objects.filter(name="clf").update(
            contract={"outputs": [{"name": "y", "shape": [None, 5], "dtype": "float32"}]}
        )
        response = switch_streamed(api, {"clf": "pol@2"})
        assert response.status_code == 409
        assert response["Content-Type"] == "application/json; charset=utf-8"
        assert response.json()["slots"]["clf"].startswith("pol@2 does not fit slot clf: ")
        assert_still_serving(api, "clf", serving["clf1"])


def test_a_worker_that_is_down_ends_the_stream_with_the_plain_calls_503(
    api, serving, closed_port_worker
):
    events = list(lines_of(switch_streamed(api, {"clf": "pol@2"})))
    assert [e["event"] for e in events] == ["result", "done"]
    done = events[-1]
    assert done["ok"] is False and done["status"] == 503
    assert closed_port_worker in done["detail"] and closed_port_worker in done["slots"]["clf"]
    assert Slot.objects.get(name="clf").active_version_id == serving["clf1"].pk


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not json", 422),
        (b'{"nope": "pol@2"}', 404),
        (b'{"clf": "pol@9"}', 404),
    ],
)
def test_refusals_known_before_the_switch_starts_are_plain_json(api, serving, body, status):
    response = api.generic(
        "POST", "/api/v1/switch?stream=true", body, content_type="application/json"
    )
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert response.json()["detail"]
    # Only the refusal is audited, as without streaming.
    assert not AuditEvent.objects.exclude(outcome="refused").exists()


def test_a_read_only_token_is_refused_as_plain_json(client, read_only_token, serving):
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {read_only_token}"
    response = switch_streamed(client, {"clf": "pol@2"})
    assert response.status_code == 403
    assert response["Content-Type"] == "application/json; charset=utf-8"


@pytest.mark.parametrize(
    ("accept", "query", "streams"),
    [
        (NDJSON, "", True),
        (f"application/json;q=0.5, {NDJSON}", "", True),
        ("*/*", "", False),
        ("application/json", "", False),
        ("", "?stream=true", True),
        (NDJSON, "?stream=false", False),
    ],
)
def test_the_stream_is_chosen_by_accept_or_the_query(api, serving, accept, query, streams):
    """A slot already serving its version: no worker is asked, done is the only line."""
    headers = {"HTTP_ACCEPT": accept} if accept else {}
    response = api.post(
        f"/api/v1/switch{query}", {"clf": "clf@1"}, content_type="application/json", **headers
    )
    assert response.status_code == 200
    if streams:
        [done] = lines_of(response)
        assert done["event"] == "done" and done["slots"]["clf"]["unchanged"] is True
    else:
        assert response.json()["slots"]["clf"]["unchanged"] is True


def test_the_openapi_schema_documents_the_stream(api):
    schema = api.get("/api/v1/openapi.json").json()
    operation = schema["paths"]["/api/v1/switch"]["post"]
    assert NDJSON in operation["responses"]["200"]["content"]
    assert "application/json" in operation["responses"]["200"]["content"]
    assert any(p["name"] == "stream" for p in operation["parameters"])
    assert NDJSON in operation["description"]


@pytest.mark.worker
def test_under_daphne_lines_stream_without_blocking_and_a_hang_up_does_not_stop_the_switch(
    api, settings, owner, robot_token, serving, tmp_path
):
    gate = tmp_path / "held"
    gate_version(owner, name="slow", version="1", gate=gate)
    with live_worker(settings) as worker:
        web = WebProcess(
            env={**worker_environment(), **WORKER_ENV, "MODELMGR_WORKER_URL": worker.url}
        ).start()
        try:
            headers = {"Authorization": f"Bearer {robot_token}", "Accept": NDJSON}
            with httpx.Client(base_url=web.url, headers=headers, timeout=60) as http:
                with http.stream("POST", "/api/v1/switch", json={"clf": "slow@1"}) as response:
                    assert response.status_code == 200
                    assert response.headers["content-type"] == NDJSON
                    lines = (json.loads(line) for line in response.iter_lines() if line)
                    assert read_until(lines, "loading")[0]["phase"] == "validating"
                    # The load is held: the event loop still serves other requests.
                    assert http.get("/api/v1/health").status_code == 200
                # The client has hung up mid-switch; the switch goes on and commits.
                gate.touch()
                eventually(
                    lambda: AuditEvent.objects.filter(action="slot.switch").exists(),
                    what="the switch to finish",
                )
                assert AuditEvent.objects.get(action="slot.switch").outcome == "ok"
                assert Slot.objects.get(name="clf").active_version.ref == "slow@1"
                assert served_by(api, "clf") == "slow@1"
        finally:
            web.stop()
