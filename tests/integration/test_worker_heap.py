"""The worker exempts its start-up heap from full garbage collections (worker.freeze_startup_heap), on the real
broker and engine: the objects alive once it has started are frozen, and with the setting off nothing is."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from tests.kafka_helpers import image_event, inline, kafka_overrides, produce, run_until_handled
from tests.support import LoopThread, tiny_settings
from zoomguard.detector.engines.base import Engine
from zoomguard.kafka.embedded_broker import EmbeddedBroker
from zoomguard.samples import make_samples


@pytest.mark.parametrize("freeze", [True, False])
def test_the_start_up_heap_is_frozen_only_when_asked(
    freeze: bool, loop: LoopThread, broker: EmbeddedBroker, tiny_model: Path, inprocess_engine: Engine
) -> None:
    kafka = kafka_overrides(broker.bootstrap, f"heap-{freeze}", partitions=1)
    sample = make_samples(1, seed=1601, size=(96, 80))[0]
    produce(broker.bootstrap, kafka["topics"]["input"], [(b"heap-0", image_event("heap-0", inline(sample.data)))])
    settings = tiny_settings(
        str(tiny_model), **kafka, worker={"audit_rate": 0.0, "commit_interval_s": 0.2, "freeze_startup_heap": freeze}
    )
    gc.unfreeze()
    try:
        stats = run_until_handled(loop, settings, inprocess_engine, total=1)
        frozen = gc.get_freeze_count()
    finally:
        gc.unfreeze()  # the rest of the test session collects as usual
    assert stats.outcomes["verdict"] == 1
    if freeze:
        assert frozen > 100_000, f"the libraries and the engine's front end are frozen, not a handful: {frozen}"
    else:
        assert frozen == 0
