"""Observability: structured logs, OpenTelemetry traces and metrics, health endpoints."""
