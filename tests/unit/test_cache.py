"""Verdict cache: bounded LRU, keyed by model version, concurrent reposts share one detection."""

from __future__ import annotations

import asyncio

import pytest

from tests.unit.test_routing import detection
from zoomguard.errors import EngineUnavailableError
from zoomguard.worker.cache import VerdictCache


def _with(sha: str, version: str = "v7"):  # type: ignore[no-untyped-def]
    base = detection()
    return base.model_copy(
        update={
            "image": base.image.model_copy(update={"sha256": sha}),
            "model": base.model.model_copy(update={"version": version}),
        }
    )


def test_lru_bound_and_version_key() -> None:
    cache = VerdictCache(2)
    for sha in ("a", "b", "c"):
        cache.put(_with(sha))
    assert len(cache) == 2 and cache.get("a", "v7") is None
    assert cache.get("c", "v7") is not None
    assert cache.get("c", "v8") is None  # a new model version never sees old verdicts


def test_disabled_cache_stores_nothing() -> None:
    cache = VerdictCache(0)
    cache.put(_with("a"))
    assert len(cache) == 0


def test_concurrent_requests_share_one_detection() -> None:
    calls = 0

    async def detect():  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return _with("same")

    async def run():  # type: ignore[no-untyped-def]
        cache = VerdictCache(10)
        results = await asyncio.gather(*(cache.get_or_detect("same", "v7", detect) for _ in range(5)))
        later = await cache.get_or_detect("same", "v7", detect)
        return results, later

    results, later = asyncio.run(run())
    assert calls == 1
    assert sorted(hit for _, hit in results) == [False, True, True, True, True]
    assert later[1] is True


def test_failures_are_not_cached_and_reach_every_waiter() -> None:
    attempts = 0

    async def failing():  # type: ignore[no-untyped-def]
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0.01)
        raise EngineUnavailableError("down")

    async def run() -> list[object]:
        cache = VerdictCache(10)
        first = await asyncio.gather(
            *(cache.get_or_detect("x", "v7", failing) for _ in range(3)), return_exceptions=True
        )
        second = await asyncio.gather(cache.get_or_detect("x", "v7", failing), return_exceptions=True)
        return [*first, *second]

    outcomes = asyncio.run(run())
    assert all(isinstance(o, EngineUnavailableError) for o in outcomes)
    assert attempts == 2
    with pytest.raises(EngineUnavailableError):
        raise outcomes[0]  # type: ignore[misc]


def test_a_changed_bank_entry_drops_the_verdicts_of_images_near_it() -> None:
    cache = VerdictCache(10)

    def stored(sha: str, pdq: str | None) -> None:
        base = _with(sha)
        cache.put(base.model_copy(update={"image": base.image.model_copy(update={"pdq": pdq})}))

    stored("a", "f" * 64)
    stored("b", "0" * 7 + "f" * 57)  # 28 bits away: within 31
    stored("c", "0" * 8 + "f" * 56)  # 32 bits away: kept
    stored("d", None)  # decided before decoding: no hash, kept
    assert cache.forget_near("f" * 64, 31) == 2
    assert cache.get("a", "v7") is None and cache.get("b", "v7") is None
    assert cache.get("c", "v7") is not None and cache.get("d", "v7") is not None
