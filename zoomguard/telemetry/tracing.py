"""Traces: one per event, continuing the uploader's trace from the record headers (W3C trace context).

The tracer comes from a provider built in the wiring place and is passed in; with traces off it is
OpenTelemetry's no-op tracer, so instrumented code costs almost nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from zoomguard.telemetry.settings import TelemetrySettings

_PROPAGATOR = TraceContextTextMapPropagator()
TRACE_HEADERS = ("traceparent", "tracestate")


def build_tracer_provider(settings: TelemetrySettings, extra_processor: SpanProcessor | None = None) -> TracerProvider:
    """A real provider even with exporting off: trace ids still exist for log lines and still propagate
    from input headers to output headers, so an uploader's trace is never broken by zoomguard."""
    provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}))
    if settings.traces == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = settings.otlp_endpoint.rstrip("/")
        exporter = OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces") if endpoint else OTLPSpanExporter()
        provider.add_span_processor(BatchSpanProcessor(exporter))
    elif settings.traces == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    if extra_processor is not None:
        provider.add_span_processor(extra_processor)
    return provider


def tracer_from(provider: TracerProvider) -> trace.Tracer:
    return provider.get_tracer("zoomguard")


def context_from_headers(headers: Iterable[tuple[str, bytes]]) -> Context:
    carrier = {key.lower(): value.decode("latin-1") for key, value in headers if key.lower() in TRACE_HEADERS}
    return _PROPAGATOR.extract(carrier)


def headers_from_context() -> list[tuple[str, bytes]]:
    """The current span's context as W3C headers for an output record."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return [(key, value.encode("latin-1")) for key, value in carrier.items()]


def kafka_attributes(topic: str, partition: int, offset: int | None, operation: str, **extra: Any) -> dict[str, Any]:
    """OpenTelemetry messaging semantic conventions for a Kafka record."""
    attributes: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.destination.name": topic,
        "messaging.operation.type": operation,
        "messaging.destination.partition.id": str(partition),
    }
    if offset is not None:
        attributes["messaging.kafka.offset"] = offset
    attributes.update({k: v for k, v in extra.items() if v is not None})
    return attributes
