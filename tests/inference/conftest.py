"""Fixtures for worker tests: an in-process Worker on CPU with the gate runtime."""

from __future__ import annotations

import pytest

from inference.device import DeviceInfo
from tests.inference.support import GATE_RUNTIMES


@pytest.fixture(autouse=True)
def worker_settings(settings, tmp_path):
    settings.MODELMGR_WORKER_CACHE_DIR = tmp_path / "worker-cache"
    settings.MODELMGR_WORKER_RUNTIMES = GATE_RUNTIMES
    settings.MODELMGR_WORKER_RAM_BUDGET_MB = 0
    return settings


@pytest.fixture
def make_worker():
    from inference.worker import Worker

    made = []

    def make(**kwargs) -> Worker:
        worker = Worker(device=kwargs.pop("device", DeviceInfo("cpu", "test cpu")), **kwargs)
        made.append(worker)
        return worker

    yield make
    for worker in made:
        worker.pool.close(timeout=5)


@pytest.fixture
def worker(make_worker):
    return make_worker()
