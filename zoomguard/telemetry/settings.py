"""Telemetry settings: all off by default (a CLI run exports nothing), on in the deployment configs."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TelemetrySettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING, ERROR")
    log_json: bool | None = Field(None, description="JSON log lines; unset: JSON unless stderr is a terminal")
    traces: Literal["none", "otlp", "console"] = Field("none", description="trace exporter")
    otlp_endpoint: str = Field(
        "", description="OTLP/HTTP traces endpoint; empty: OTEL_EXPORTER_OTLP_ENDPOINT or http://localhost:4318"
    )
    service_name: str = Field("zoomguard", description="service.name resource attribute")
    metrics_port: int | None = Field(
        None, ge=0, le=65535, description="serve Prometheus metrics on this port (/metrics); unset: off"
    )
    metrics_host: str = Field(
        "0.0.0.0", min_length=1, description="metrics listen address (0.0.0.0: every interface, as pods need)"
    )
    health_port: int | None = Field(None, ge=0, le=65535, description="serve /live and /ready on this port; unset: off")
    health_host: str = Field(
        "0.0.0.0", min_length=1, description="health listen address (0.0.0.0: every interface, as probes need)"
    )
    ready_max_paused_s: float = Field(
        300.0, gt=0, description="not ready when the consumer has been paused (window full) longer than this"
    )
    ready_max_poll_gap_s: float = Field(30.0, gt=0, description="not ready when no poll succeeded for this long")
