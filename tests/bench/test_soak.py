"""The soak stage: RSS of every process over thousands of distinct uploads (here a handful: the harness, not a
figure), and the growth rule that says whether memory is flat after the warm-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.kafka_helpers import FAST_GROUP
from tests.support import LoopThread, tiny_settings
from zoomguard.bench.soak import RssSample, SoakResult, growth_after_warmup, soak
from zoomguard.detector.engines.base import Engine
from zoomguard.kafka.embedded_broker import EmbeddedBroker


def _sample(handled: int, worker: float, core: float) -> RssSample:
    return RssSample(handled=handled, seconds=float(handled), rss_mb={"worker": worker, "engine_core": core})


def test_growth_is_measured_from_the_end_of_the_warm_up() -> None:
    samples = [_sample(0, 500, 300), _sample(200, 900, 1000), _sample(250, 910, 1010), _sample(1000, 930, 1515)]
    growth = growth_after_warmup(samples, uploads=1000)
    assert growth["worker"] == pytest.approx(930 / 910, abs=1e-3)  # the warm-up's climb from 500 is not counted
    assert growth["engine_core"] == pytest.approx(1.5, abs=1e-3)
    assert growth["total"] == pytest.approx((930 + 1515) / (910 + 1010), abs=1e-3)
    result = SoakResult(uploads=1000, seconds=10.0, samples=samples)
    assert result.to_json()["flat"] is False
    flat = SoakResult(uploads=1000, seconds=10.0, samples=[_sample(250, 900, 1000), _sample(1000, 920, 1040)])
    assert flat.to_json()["flat"] is True
    assert growth_after_warmup(samples[:1], uploads=1000) == {}
    with_broker = [
        RssSample(250, 1.0, {"worker": 900, "broker": 80}),
        RssSample(1000, 2.0, {"worker": 910, "broker": 400}),  # the benchmark's broker keeps every record
    ]
    assert growth_after_warmup(with_broker, uploads=1000) == {
        "worker": pytest.approx(910 / 900, abs=1e-3),
        "total": pytest.approx(910 / 900, abs=1e-3),
    }


def test_a_short_soak_samples_every_process_of_the_worker(
    loop: LoopThread, broker: EmbeddedBroker, tiny_model: Path, inprocess_engine: Engine
) -> None:
    settings = tiny_settings(str(tiny_model), kafka={"bootstrap_servers": broker.bootstrap, **FAST_GROUP})
    result = loop.run(soak(settings, inprocess_engine, 12, size=(96, 72), max_in_flight=8, every_s=0.2), timeout=600)
    assert result.uploads == 12 and result.samples[-1].handled == 12
    roles = set(result.samples[-1].rss_mb)
    assert {"worker", "engine_core"} <= roles, roles
    assert all(mb > 0 for mb in result.samples[-1].rss_mb.values())
    assert "total" in result.growth()
