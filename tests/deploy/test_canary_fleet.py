"""A canary on several real workers: each counts the requests it answered, and the
slot's arms (API and settings page) are the sum over the workers, with percentiles
over all their latencies; a worker that does not answer is named, not hidden."""

from __future__ import annotations

import json

import httpx
import pytest

from modelmgr.deploy.arms import percentile
from tests.deploy.test_fleet_live import fleet
from tests.inference.support import make_slot, onnx_version

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
BODY = json.dumps({"inputs": {"x": [[0.1, -0.4, 0.3, 0.9]]}})


@pytest.fixture
def clf(owner, model_files, tmp_path):
    one = onnx_version(owner, model_files, tmp_path, name="clf", version="1", seed=0)
    onnx_version(owner, model_files, tmp_path, name="clf", version="2", seed=1)
    make_slot("clf", one, task="classifier")
    return one


def infer(worker, times: int) -> list[str]:
    answers = [
        httpx.post(f"{worker.url}/infer/clf", content=BODY, timeout=10) for _ in range(times)
    ]
    assert all(a.status_code == 200 for a in answers), answers[-1].text
    return [a.json()["model"] for a in answers]


def own_arms(worker) -> dict:
    arms = httpx.get(f"{worker.url}/arms?samples=1", timeout=10).json()
    return arms["slots"]["clf"]


def test_the_arms_of_a_canary_are_summed_over_every_worker(api, owner_client, settings, clf):
    # Nobody is marked down during the test: a killed worker stays "up" and unanswering.
    settings.MODELMGR_WORKER_DOWN_AFTER = 10_000
    with fleet(settings, 2) as workers:
        body = json.dumps({"version": "clf@2", "share": 0.5})
        response = api.post("/api/v1/slots/clf/canary", body, content_type="application/json")
        assert response.status_code == 200, response.content
        answered = infer(workers[0], 30) + infer(workers[1], 50)
        assert {"clf@1", "clf@2"} == set(answered)  # both arms took traffic on both
        mine = [own_arms(w) for w in workers]

        arms = api.get("/api/v1/slots/clf/arms").json()
        assert arms["worker"] == {"reachable": True, "detail": ""}
        assert [(w["name"], w["reachable"]) for w in arms["workers"]] == [
            ("w1", True),
            ("w2", True),
        ]
        for arm in ("primary", "canary"):
            figures = arms["arms"][arm]
            assert figures["requests"] == sum(m[arm]["requests"] for m in mine)
            assert figures["requests"] == answered.count(figures["ref"])
            latencies = sorted(v for m in mine for v in m[arm]["latencies_ms"])
            assert figures["p95_ms"] == percentile(latencies, 95)
            assert "latencies_ms" not in figures
        assert arms["arms"]["primary"]["requests"] + arms["arms"]["canary"]["requests"] == 80

        page = owner_client.get("/settings/clf/arms")
        assert page.status_code == 200 and b"Summed over 2 workers" in page.content

        workers[1].kill()
        partial = api.get("/api/v1/slots/clf/arms").json()
        assert partial["worker"]["reachable"] is False and "w2" in partial["worker"]["detail"]
        assert [(w["name"], w["reachable"]) for w in partial["workers"]] == [
            ("w1", True),
            ("w2", False),
        ]
        total = partial["arms"]["primary"]["requests"] + partial["arms"]["canary"]["requests"]
        assert total == 30  # w1's own requests only, said so
        page = owner_client.get("/settings/clf/arms")
        assert b"Not every worker answers" in page.content and b"w2" in page.content


def test_the_percentile_is_numpys_linear_one():
    numpy = pytest.importorskip("numpy")
    values = [0.3, 1.7, 2.2, 9.5, 4.1, 0.9, 3.3]
    for q in (50, 95, 99):
        assert percentile(sorted(values), q) == round(float(numpy.percentile(values, q)), 4)
    assert percentile([], 50) is None
