"""Readiness rules, as pure state transitions."""

from __future__ import annotations

import time

from zoomguard.telemetry.health import HealthState
from zoomguard.telemetry.settings import TelemetrySettings


def test_ready_needs_engine_polls_and_no_long_pause() -> None:
    state = HealthState(TelemetrySettings(ready_max_paused_s=0.05, ready_max_poll_gap_s=30))
    assert state.ready() == (False, ["engine not loaded", "broker not polled recently"])
    state.engine_loaded = True
    state.polled(paused=False, assigned=3)
    assert state.ready() == (True, [])
    state.engine_failed()
    ok, problems = state.ready()
    assert not ok and problems[0].startswith("engine unavailable")
    state.engine_answered()
    state.polled(paused=True, assigned=3)
    assert state.ready()[0]  # a short pause is normal back-pressure
    time.sleep(0.06)
    state.polled(paused=True, assigned=3)
    assert state.ready()[1][0].startswith("paused (window full)")
    state.polled(paused=False, assigned=3)
    assert state.ready() == (True, [])
    state.stopping = True
    assert state.ready() == (False, ["stopping"])
    assert state.live() == (True, [])
