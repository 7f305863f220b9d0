"""Dynamic batching in the real worker process: stacked runs equal lone ones, a bad
request fails alone, no request waits past the delay, switches under batched load."""

from __future__ import annotations

import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelmgr.deploy.batching import slot_batching_set
from modelmgr.models import Slot
from tests.inference.support import eventually, make_slot, onnx_version, registered
from tests.registry.factories import make_version
from tests.workerproc import start_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
QUIET = {"MODELMGR_RECONCILE_INTERVAL_S": "3600", "MODELMGR_STATS_FLUSH_S": "3600"}
DELAY_US = 50_000  # long enough that concurrent test threads surely meet in one batch
# How late the event loop may fire the delay's timer on a loaded 2-core machine; a
# batcher that waited for a fuller batch instead would be late by whole delays.
SLACK_MS = 300


def rows(seed: int, n: int = 1) -> list[list[float]]:
    return np.random.default_rng(seed).standard_normal((n, 4)).round(4).tolist()


def predict(client: httpx.Client, slot: str, x) -> httpx.Response:
    return client.post(f"/infer/{slot}", json={"inputs": {"x": x}})


def concurrently(calls) -> list:
    """Run the calls at once (a barrier lines them up), results in order."""
    barrier = threading.Barrier(len(calls))

    def go(call):
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(go, calls))


@pytest.fixture
def served(owner, model_files, tmp_path):
    """One version on two slots: ``plain`` runs alone, ``batched`` batches up to 8."""
    version = onnx_version(owner, model_files, tmp_path)
    make_slot("plain", version)
    make_slot("batched", version, max_batch_size=8, max_queue_delay_us=DELAY_US)
    return version


def test_concurrent_batched_outputs_equal_lone_runs(served):
    with start_worker(env=QUIET) as worker, worker.client() as client:
        worker.wait_ready()
        assert client.get("/status").json()["batching"] == {
            "batched": {
                "max_batch_size": 8,
                "max_queue_delay_us": DELAY_US,
                "preferred_batch_sizes": [],
            }
        }
        inputs = [rows(seed, n=1 + seed % 2) for seed in range(6)]  # 1- and 2-row requests
        expected = [predict(client, "plain", x).json()["outputs"]["y"] for x in inputs]
        clients = [worker.client() for _ in inputs]
        try:
            answers = concurrently(
                [
                    lambda c=c, x=x: predict(c, "batched", x)
                    for c, x in zip(clients, inputs, strict=True)
                ]
            )
        finally:
            for c in clients:
                c.close()
        assert [a.status_code for a in answers] == [200] * len(inputs)
        for answer, want, x in zip(answers, expected, inputs, strict=True):
            got = answer.json()["outputs"]["y"]
            assert np.allclose(got, want, atol=1e-5) and len(got) == len(x)
        stats = client.get("/batching").json()["slots"]["batched"]
        assert stats["requests"] == len(inputs)
        assert stats["batches"] < len(inputs), stats  # requests shared runs
        assert max(int(size) for size in stats["sizes"]) > 1
        # No request waited past the delay (plus the event loop's timer slack).
        assert stats["max_queue_ms"] <= DELAY_US / 1000 + SLACK_MS, stats
        assert "plain" not in client.get("/batching").json()["slots"]
        # The same figures reach Prometheus: batch sizes and queue times per slot.
        families = {
            family.name: family
            for family in text_string_to_metric_families(client.get("/metrics").text)
        }
        counts = {
            sample.name: sample.value
            for name in ("modelmgr_worker_batch_size", "modelmgr_worker_batch_queue_seconds")
            for sample in families[name].samples
            if sample.name.endswith("_count") and sample.labels == {"slot": "batched"}
        }
        assert counts == {
            "modelmgr_worker_batch_size_count": stats["batches"],
            "modelmgr_worker_batch_queue_seconds_count": stats["requests"],
        }


def test_a_bad_request_among_good_ones_fails_alone(served):
    with start_worker(env=QUIET) as worker, worker.client() as client:
        worker.wait_ready()
        good = [rows(seed) for seed in range(5)]
        expected = [predict(client, "plain", x).json()["outputs"]["y"] for x in good]
        float64 = io.BytesIO()
        np.save(float64, np.zeros((1, 4), dtype=np.float64))

        def bad_shape(c):
            return predict(c, "batched", [[1.0, 2.0, 3.0]])

        def bad_dtype(c):
            return c.post(
                "/infer/batched",
                content=float64.getvalue(),
                headers={"content-type": "application/x-npy"},
            )

        calls = [lambda x=x: lambda c: predict(c, "batched", x) for x in good]
        makers = [*(make() for make in calls), bad_shape, bad_dtype]
        clients = [worker.client() for _ in makers]
        try:
            answers = concurrently(
                [lambda m=m, c=c: m(c) for m, c in zip(makers, clients, strict=True)]
            )
        finally:
            for c in clients:
                c.close()
        assert [a.status_code for a in answers] == [200] * 5 + [422, 422]
        assert "x" in answers[5].json()["detail"]
        assert "float64" in answers[6].json()["detail"] or "dtype" in answers[6].json()["detail"]
        for answer, want in zip(answers[:5], expected, strict=True):
            assert np.allclose(answer.json()["outputs"]["y"], want, atol=1e-5)
        stats = client.get("/batching").json()["slots"]["batched"]
        assert stats["requests"] == 5 and stats["batches"] < 5, stats


def test_a_lone_request_waits_no_longer_than_the_delay(served):
    with start_worker(env=QUIET) as worker, worker.client() as client:
        worker.wait_ready()
        predict(client, "batched", rows(0))  # first run: warm caches
        started = time.perf_counter()
        assert predict(client, "batched", rows(1)).status_code == 200
        took_ms = (time.perf_counter() - started) * 1000
        assert DELAY_US / 1000 <= took_ms < DELAY_US / 1000 + SLACK_MS
        stats = client.get("/batching").json()["slots"]["batched"]
        assert stats["sizes"] == {"1": 2}
        assert stats["max_queue_ms"] <= DELAY_US / 1000 + SLACK_MS, stats


def test_batching_set_through_the_service_reaches_a_running_worker(served, staff, settings):
    Slot.objects.filter(name="batched").update(max_batch_size=0)
    with start_worker(env=QUIET) as worker, worker.client() as client:
        worker.wait_ready()
        assert client.get("/status").json()["batching"] == {}
        settings.MODELMGR_WORKER_URL = worker.url
        slot_batching_set(slot_name="plain", actor=staff, max_batch_size=4)
        eventually(
            lambda: client.get("/status").json()["batching"].get("plain"),
            what="the batching change applied by the worker",
        )
        concurrently([lambda x=x: predict(worker.client(), "plain", x) for x in [rows(1)] * 4])
        assert client.get("/batching").json()["slots"]["plain"]["requests"] == 4


def test_switch_during_batched_load_fails_nothing_and_each_batch_runs_on_one_version(
    owner, model_files, tmp_path
):
    v1 = onnx_version(owner, model_files, tmp_path, version="1")
    v2 = onnx_version(owner, model_files, tmp_path, version="2", seed=1)
    make_slot("plain1", v1)
    make_slot("plain2", v2)
    make_slot("det", v1, max_batch_size=8, max_queue_delay_us=5_000)
    x = rows(7)
    env = {**QUIET, "MODELMGR_SWITCH_GRACE_S": "3600"}
    with start_worker(env=env) as worker, worker.client() as client:
        worker.wait_ready()
        want = {
            "clf@1": predict(client, "plain1", x).json()["outputs"]["y"],
            "clf@2": predict(client, "plain2", x).json()["outputs"]["y"],
        }
        assert not np.allclose(want["clf@1"], want["clf@2"])
        stop = threading.Event()
        failures, seen = [], []

        def hammer():
            with worker.client() as c:
                while not stop.is_set():
                    r = predict(c, "det", x)
                    if r.status_code != 200:
                        failures.append((r.status_code, r.text))
                        continue
                    body = r.json()
                    seen.append(body["model"])
                    if not np.allclose(body["outputs"]["y"], want[body["model"]], atol=1e-5):
                        failures.append(("wrong output for", body["model"]))

        threads = [threading.Thread(target=hammer) for _ in range(8)]
        for t in threads:
            t.start()
        try:
            for i in range(6):
                target = v2 if i % 2 == 0 else v1
                with client.stream(
                    "POST", "/switch", json={"switch_id": f"s{i}", "slots": {"det": target.pk}}
                ) as r:
                    lines = [line for line in r.iter_lines() if line]
                assert '"ok": true' in lines[-1], lines[-1]
                time.sleep(0.1)
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert failures == []
        assert {"clf@1", "clf@2"} <= set(seen)
        stats = client.get("/batching").json()["slots"]["det"]
        assert max(int(size) for size in stats["sizes"]) > 1, stats


def lookup_model() -> bytes:
    """A real ONNX graph that fails on some values: ``table[idx]`` with a 5-row table,
    so an index of 7 passes every shape and dtype check and fails in onnxruntime."""
    from onnx import TensorProto, helper, numpy_helper

    table = np.arange(10, dtype=np.float32).reshape(5, 2)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "idx"], ["y"], axis=0)],
        "lookup",
        [helper.make_tensor_value_info("idx", TensorProto.INT64, ["batch", 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1, 2])],
        [numpy_helper.from_array(table, "table")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def test_a_value_the_model_cannot_take_fails_its_own_request_not_the_batch(owner):
    version = make_version(
        registered(owner, "lookup"),
        "1",
        files={"model.onnx": lookup_model()},
        framework="onnx",
        signature={
            "inputs": [{"name": "idx", "shape": ["batch", 1], "dtype": "int64"}],
            "outputs": [{"name": "y", "shape": ["batch", 1, 2], "dtype": "float32"}],
        },
    )
    make_slot("lookup", version, max_batch_size=8, max_queue_delay_us=DELAY_US)
    with start_worker(env=QUIET) as worker:
        worker.wait_ready()
        indexes = [0, 1, 7, 2, 4]
        clients = [worker.client() for _ in indexes]
        try:
            answers = concurrently(
                [
                    lambda c=c, i=i: c.post("/infer/lookup", json={"inputs": {"idx": [[i]]}})
                    for c, i in zip(clients, indexes, strict=True)
                ]
            )
        finally:
            for c in clients:
                c.close()
        assert [a.status_code for a in answers] == [200, 200, 500, 200, 200]
        assert "inference on slot lookup (lookup@1) failed" in answers[2].json()["detail"]
        for answer, i in zip(answers, indexes, strict=True):
            if i != 7:
                assert answer.json()["outputs"]["y"] == [[[2.0 * i, 2.0 * i + 1]]]
        with worker.client() as client:
            stats = client.get("/batching").json()["slots"]["lookup"]
        assert stats["batches"] < len(indexes), stats
