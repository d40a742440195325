"""Worker metrics as OpenTelemetry instruments, exported for Prometheus scraping.

Names in Prometheus form: zoomguard_events_total{outcome}, zoomguard_decisions_total{decision},
zoomguard_review_requests_total{reason}, zoomguard_cache_hits_total, zoomguard_stage_duration_seconds{stage},
zoomguard_end_to_end_latency_seconds, zoomguard_in_flight, zoomguard_paused, zoomguard_engine_queue_depth,
zoomguard_consumer_lag{topic,partition}.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource

from zoomguard.telemetry.settings import TelemetrySettings

# Latency buckets in seconds: GPU queries take tens of ms to seconds; end-to-end can take minutes in a backlog.
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


@dataclass
class LiveState:
    """Numbers the gauges read when scraped; the worker keeps them current."""

    in_flight: Callable[[], int] = lambda: 0
    paused: Callable[[], bool] = lambda: False
    engine_queue_depth: Callable[[], int] = lambda: 0
    lag: Callable[[], dict[tuple[str, int], int]] = field(default=lambda: {})


class WorkerMetrics:
    def __init__(self, meter: metrics.Meter, state: LiveState):
        self.state = state
        self.events = meter.create_counter("zoomguard.events", description="events handled, by outcome")
        self.decisions = meter.create_counter(
            "zoomguard.decisions", description="verdicts by decision and by the stage that decided (source)"
        )
        self.evidence = meter.create_counter(
            "zoomguard.evidence", description="verdicts carrying evidence of each kind (c2pa, xmp, ...)"
        )
        self.reviews = meter.create_counter("zoomguard.review_requests", description="review requests by reason")
        self.cache_hits = meter.create_counter("zoomguard.cache_hits", description="verdicts served by the cache")
        self.stage_duration = meter.create_histogram(
            "zoomguard.stage.duration",
            unit="s",
            description="time per pipeline stage",
            explicit_bucket_boundaries_advisory=_BUCKETS,
        )
        self.end_to_end = meter.create_histogram(
            "zoomguard.end_to_end.latency",
            unit="s",
            description="from the event's submitted_at to its verdict being published",
            explicit_bucket_boundaries_advisory=_BUCKETS,
        )
        meter.create_observable_gauge("zoomguard.in_flight", [self._observe(lambda: state.in_flight())])
        meter.create_observable_gauge("zoomguard.paused", [self._observe(lambda: int(state.paused()))])
        meter.create_observable_gauge(
            "zoomguard.engine.queue_depth", [self._observe(lambda: state.engine_queue_depth())]
        )
        meter.create_observable_gauge("zoomguard.consumer.lag", [self._observe_lag])

    @staticmethod
    def _observe(read: Callable[[], int]) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(read())]

        return callback

    def _observe_lag(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(lag, {"topic": topic, "partition": str(partition)})
            for (topic, partition), lag in self.state.lag().items()
        ]

    def stage(self, stage: str, seconds: float) -> None:
        self.stage_duration.record(seconds, {"stage": stage})


@dataclass
class MetricsExport:
    provider: MeterProvider | None
    server: Any = None

    def shutdown(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        if self.provider is not None:
            self.provider.shutdown()


def build_metrics(
    settings: TelemetrySettings, state: LiveState, extra_reader: MetricReader | None = None
) -> tuple[WorkerMetrics, MetricsExport]:
    """Instruments backed by a Prometheus endpoint when metrics_port is set; no-ops otherwise."""
    readers: list[MetricReader] = []
    server = None
    if settings.metrics_port is not None:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import CollectorRegistry, start_http_server

        registry = CollectorRegistry()  # our own registry: several workers in one process never collide
        readers.append(PrometheusMetricReader(registry=registry))
        server, _ = start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=registry)
    if extra_reader is not None:
        readers.append(extra_reader)
    if not readers:
        return WorkerMetrics(metrics.NoOpMeter("zoomguard"), state), MetricsExport(None)
    provider = MeterProvider(metric_readers=readers, resource=Resource.create({"service.name": settings.service_name}))
    return WorkerMetrics(provider.get_meter("zoomguard"), state), MetricsExport(provider, server)
