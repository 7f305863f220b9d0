"""The serving port's token cache (inference.serving.auth.TokenCache) on the real database.

A token in steady use must not make its requests wait for a thread and a query each time
its entry expires (benchmarks/RESULTS.md, data plane): it is refreshed in the background
shortly before, and a revoked token is still refused within the cache time.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from inference.serving.auth import REFRESH_AHEAD, TokenCache
from modelmgr.registry.tokens import token_revoke
from tests.inference.serving.conftest import token

pytestmark = pytest.mark.django_db(transaction=True)
TTL = 1.0


async def _until_refreshed(cache: TokenCache, raw: str) -> None:
    deadline = time.monotonic() + 10
    while cache.refreshing(raw):
        assert time.monotonic() < deadline, "the background lookup never finished"
        await asyncio.sleep(0.01)


def test_a_token_in_use_is_refreshed_before_it_expires_and_no_request_waits(owner):
    raw = token(owner, name="busy-robot")

    async def scenario():
        cache = TokenCache(TTL)
        try:
            started = time.monotonic()
            assert (await cache.grant(raw)).name == "busy-robot"  # the first use looks it up
            assert not cache.refreshing(raw)
            # In the last fifth of its time: answered from the cache, refreshed behind it.
            await asyncio.sleep(TTL * (1 - REFRESH_AHEAD / 2) - (time.monotonic() - started))
            assert (await cache.grant(raw)).name == "busy-robot"
            assert cache.refreshing(raw), "no background lookup before the entry expired"
            await _until_refreshed(cache, raw)
            # Past the first entry's expiry: still cached (renewed), no lookup to wait for.
            await asyncio.sleep(max(0.0, started + TTL + 0.05 - time.monotonic()))
            assert (await cache.grant(raw)).name == "busy-robot"
            assert not cache.refreshing(raw)

            # Revoked: refused within the cache time, refresh or not.
            await asyncio.to_thread(token_revoke, user=owner, name="busy-robot")
            deadline = time.monotonic() + TTL + 0.5
            while await cache.grant(raw) is not None:
                assert time.monotonic() < deadline, "a revoked token outlived the cache time"
                await asyncio.sleep(0.02)
        finally:
            cache.close()

    asyncio.run(scenario())


def test_an_unknown_token_is_refused_and_the_refusal_is_cached(owner):
    async def scenario():
        cache = TokenCache(TTL)
        try:
            assert await cache.grant("mm_not-a-token") is None
            assert await cache.grant("mm_not-a-token") is None
            assert not cache.refreshing("mm_not-a-token")  # the second one was no lookup
        finally:
            cache.close()

    asyncio.run(scenario())
