"""Everything a worker process reports through, built once in the wiring place and passed in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

from zoomguard.telemetry.health import HealthServer, HealthState
from zoomguard.telemetry.metrics import LiveState, MetricsExport, WorkerMetrics, build_metrics
from zoomguard.telemetry.settings import TelemetrySettings
from zoomguard.telemetry.tracing import build_tracer_provider, tracer_from


@dataclass
class Telemetry:
    tracer: trace.Tracer
    metrics: WorkerMetrics
    health: HealthState
    state: LiveState
    _provider: TracerProvider | None = None
    _export: MetricsExport | None = None
    _health_server: HealthServer | None = None
    _extra: list[Any] = field(default_factory=list)

    @property
    def health_port(self) -> int | None:
        return self._health_server.port if self._health_server else None

    def close(self) -> None:
        if self._health_server is not None:
            self._health_server.close()
        if self._export is not None:
            self._export.shutdown()
        if self._provider is not None:
            self._provider.shutdown()


def build_telemetry(
    settings: TelemetrySettings,
    span_processor: SpanProcessor | None = None,
    metric_reader: MetricReader | None = None,
) -> Telemetry:
    """`span_processor` / `metric_reader` add in-memory sinks (tests) beside the configured exporters."""
    provider = build_tracer_provider(settings, span_processor)
    state = LiveState()
    worker_metrics, export = build_metrics(settings, state, metric_reader)
    health = HealthState(settings)
    server = (
        HealthServer(health, settings.health_port, settings.health_host) if settings.health_port is not None else None
    )
    return Telemetry(tracer_from(provider), worker_metrics, health, state, provider, export, server)


def disabled_telemetry() -> Telemetry:
    """No exporters, no servers: for `detect` and unit tests."""
    return build_telemetry(TelemetrySettings())
