"""On the real engine: a stage on fresh images finds none of them in vLLM's cache, a stage that repeats images does
(so the probe can tell), and the workload grammar gives Query 2 the crops it promises through the serving path."""

from __future__ import annotations

from pathlib import Path

from tests.support import LoopThread, tiny_settings
from zoomguard.bench.images import FreshImages
from zoomguard.bench.probe import CacheProbe
from zoomguard.bench.runs import engine_ceiling
from zoomguard.bench.workload import WorkloadEngine, regions_for
from zoomguard.detector.engines.base import Engine
from zoomguard.detector.families import FAMILIES


def test_fresh_stages_run_cold_and_a_repeated_stage_is_caught(
    tiny_model: Path, inprocess_engine: Engine, loop: LoopThread
) -> None:
    settings = tiny_settings(str(tiny_model))
    probe = CacheProbe(inprocess_engine)
    fresh = FreshImages((160, 120), first_seed=5_000_000)

    async def stages() -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
        probe.learn_preamble()
        await engine_ceiling(settings, probe, fresh.take(3))
        probe.stop_learning()
        first_images = fresh.take(4)
        first = probe.stage()
        await engine_ceiling(settings, probe, first_images)
        second = probe.stage()
        await engine_ceiling(settings, probe, fresh.take(4))
        again = probe.stage()
        await engine_ceiling(settings, probe, first_images)  # what the old bench did: the same images again
        probe.end_stage()
        return first.to_json(), second.to_json(), again.to_json()

    first, second, again = loop.run(stages())
    assert first == second == {"locate_requests": 4, "locate_cache_hits": 0}
    assert again == {"locate_requests": 4, "locate_cache_hits": 4}
    assert probe.preamble_tokens is not None and probe.preamble_tokens < 64  # the shared text before the image


def test_the_workload_grammar_gives_query_2_its_crops(
    tiny_model: Path, inprocess_engine: Engine, loop: LoopThread
) -> None:
    settings = tiny_settings(str(tiny_model))
    workload = WorkloadEngine(inprocess_engine, 1.5, FAMILIES["qwen2_5_vl"])
    images = FreshImages((320, 240), first_seed=6_000_000).take(6)
    result = loop.run(engine_ceiling(settings, workload, images))
    assert sorted(len(d.regions) for d in result.detections) == sorted(regions_for(i, 1.5) for i in range(6))
    assert all(d.crops == len(d.regions) and d.examined for d in result.detections)  # every region cropped
    for detection in result.detections:  # the boxes are in original pixels, inside the image, disjoint
        assert all(0 <= r.box[0] < r.box[2] <= 320 and 0 <= r.box[1] < r.box[3] <= 240 for r in detection.regions)
