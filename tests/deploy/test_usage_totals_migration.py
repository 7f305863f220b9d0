"""Migration 0021: the all-time usage totals of a database that already holds buckets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("modelmgr", "0020_workers")]
AFTER = [("modelmgr", "0021_usage_totals")]


@pytest.fixture
def back_to_latest(transactional_db):
    """Migrate the test database forward to every migration again afterwards: later tests
    (and later migrations) need the whole schema, not the state this test stops at."""
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_existing_buckets_are_summed_into_one_total_per_version_and_slot(back_to_latest):
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    apps = executor.loader.project_state(BEFORE).apps
    user = apps.get_model("auth", "User").objects.create(username="old-owner")
    model = apps.get_model("modelmgr", "RegisteredModel").objects.create(owner=user, name="det")
    version = apps.get_model("modelmgr", "ModelVersion").objects.create(model=model, version="1")
    bucket = apps.get_model("modelmgr", "UsageBucket")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for minute in range(3):  # three minutes of "det", with a histogram written shorter
        bucket.objects.create(
            version=version,
            slot_name="det",
            minute=start + timedelta(minutes=minute),
            count=10,
            errors=1,
            refused=2,
            total_ms=7.0,
            min_ms=0.5 + minute,
            max_ms=3.0 + minute,
            histogram=[0, 7] if minute == 1 else [1, 3, 3],
            last_used=start + timedelta(minutes=minute, seconds=30),
        )
    bucket.objects.create(
        version=version,
        slot_name="llm",
        minute=start,
        count=2,
        total_ms=40.0,
        prompt_tokens=11,
        completion_tokens=20,
        ttft_histogram=[0, 2],
        tps_histogram=[1, 1],
        tps_min=30.0,
        tps_max=90.0,
    )

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)
    total = executor.loader.project_state(AFTER).apps.get_model("modelmgr", "UsageTotal")
    det = total.objects.get(version_id=version.pk, slot_name="det")
    assert (det.count, det.errors, det.refused, det.total_ms) == (30, 3, 6, 21.0)
    assert (det.min_ms, det.max_ms) == (0.5, 5.0)
    assert det.histogram == [2, 13, 6]
    assert det.last_used == start + timedelta(minutes=2, seconds=30)
    assert (det.prompt_tokens, det.ttft_histogram, det.tps_min) == (0, [], None)
    llm = total.objects.get(version_id=version.pk, slot_name="llm")
    assert (llm.count, llm.prompt_tokens, llm.completion_tokens) == (2, 11, 20)
    assert (llm.ttft_histogram, llm.tps_histogram, llm.tps_min, llm.tps_max) == (
        [0, 2],
        [1, 1],
        30.0,
        90.0,
    )
    assert total.objects.count() == 2
