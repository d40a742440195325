"""Traces, metrics and health of a real worker (real broker, real vLLM engine or server)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.kafka_helpers import image_event, inline, kafka_overrides, produce, read_all, run_until_handled, wait_for
from tests.support import LoopThread, TcpProxy, free_port, tiny_settings
from zoomguard.app.worker_service import run_service
from zoomguard.detector.engines.base import Engine
from zoomguard.kafka.embedded_broker import EmbeddedBroker
from zoomguard.samples import LocalImageServer, make_samples
from zoomguard.telemetry.bundle import build_telemetry

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PRODUCER_SPAN = "00f067aa0ba902b7"


def test_one_trace_per_event_continuing_the_producers_trace(
    loop: LoopThread, broker: EmbeddedBroker, tiny_model: Path, inprocess_engine: Engine
) -> None:
    sample = make_samples(1, seed=31, size=(320, 240))[0]
    with LocalImageServer() as server:
        kafka = kafka_overrides(broker.bootstrap, "traces", partitions=1)
        settings = tiny_settings(
            str(tiny_model), **kafka, fetch={"allowed_networks": ["127.0.0.2/32"], "allowed_ports": [server.port]}
        )
        traceparent = f"00-{TRACE_ID}-{PRODUCER_SPAN}-01".encode()
        url_event = image_event("traced-url", {"url": server.add(sample.name, sample.data)})
        produce(
            broker.bootstrap,
            kafka["topics"]["input"],
            [(b"traced-url", url_event)],
            headers=[("traceparent", traceparent)],
        )
        exporter = InMemorySpanExporter()
        telemetry = build_telemetry(settings.telemetry, span_processor=SimpleSpanProcessor(exporter))
        try:
            run_until_handled(loop, settings, inprocess_engine, 1, telemetry=telemetry)
        finally:
            telemetry.close()

    spans: list[ReadableSpan] = list(exporter.get_finished_spans())
    assert {format(s.context.trace_id, "032x") for s in spans} == {TRACE_ID}  # one trace, the uploader's
    names = {s.name for s in spans}
    topics = kafka["topics"]
    expected = {f"consume {topics['input']}", "fetch", "decode", "query1.locate", "crop", "query2.examine", "route",
                f"publish {topics['verdicts']}"}  # fmt: skip
    assert expected <= names
    root = next(s for s in spans if s.name == f"consume {topics['input']}")
    assert root.parent is not None and format(root.parent.span_id, "016x") == PRODUCER_SPAN
    assert root.attributes is not None
    assert root.attributes["messaging.system"] == "kafka"
    assert root.attributes["messaging.destination.name"] == topics["input"]
    assert root.attributes["messaging.consumer.group.name"] == kafka["kafka"]["group_id"]
    by_id = {s.context.span_id: s for s in spans}
    for span in spans:
        if span is not root:  # every stage hangs under the event's consume span
            ancestor = span
            while ancestor.parent is not None and ancestor.parent.span_id in by_id:
                ancestor = by_id[ancestor.parent.span_id]
            assert ancestor is root, span.name

    # the verdict record carries the trace on: same trace id, parent = our publish span
    (record,) = read_all(broker.bootstrap, topics["verdicts"])
    header = dict(record.headers)["traceparent"].decode()
    _, trace_id, parent_id, _ = header.split("-")
    assert trace_id == TRACE_ID
    publish = next(s for s in spans if s.name == f"publish {topics['verdicts']}")
    assert parent_id == format(publish.context.span_id, "016x")


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_endpoint_counts_what_happened(
    loop: LoopThread, broker: EmbeddedBroker, tiny_model: Path, inprocess_engine: Engine
) -> None:
    kafka = kafka_overrides(broker.bootstrap, "metrics", partitions=2)
    port = free_port()
    settings = tiny_settings(str(tiny_model), **kafka, telemetry={"metrics_port": port}, worker={"audit_rate": 0.0})
    samples = make_samples(3, seed=41, size=(200, 150))
    records = [(f"m-{i}".encode(), image_event(f"m-{i}", inline(s.data))) for i, s in enumerate(samples)]
    records.append((b"m-repost", image_event("m-repost", inline(samples[0].data))))
    records.append((b"m-bad", b"not json"))
    produce(broker.bootstrap, kafka["topics"]["input"], records)
    telemetry = build_telemetry(settings.telemetry)
    try:
        stats = run_until_handled(loop, settings, inprocess_engine, len(records), telemetry=telemetry)
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        telemetry.close()
    assert _metric(text, "zoomguard_events_total", outcome="verdict") == 4
    assert _metric(text, "zoomguard_events_total", outcome="dead_letter") == 1
    uncertain = stats.decisions["uncertain"]
    assert _metric(text, "zoomguard_events_total", outcome="review") == uncertain  # audit off: reviews = uncertain
    assert _metric(text, "zoomguard_decisions_total") == 4
    assert _metric(text, "zoomguard_cache_hits_total") == 1
    # three images detected (the repost was served from the cache): three Query 1 timings
    assert _metric(text, "zoomguard_stage_duration_seconds_count", stage="locate") == 3
    assert _metric(text, "zoomguard_stage_duration_seconds_count", stage="publish") == 5
    assert _metric(text, "zoomguard_end_to_end_latency_seconds_count") == 4  # the unreadable one has no submitted_at
    assert _metric(text, "zoomguard_in_flight") == 0
    assert "zoomguard_paused" in text and "zoomguard_engine_queue_depth" in text
    # everything read: no lag on either partition
    assert "zoomguard_consumer_lag" in text and _metric(text, "zoomguard_consumer_lag") == 0


def test_health_follows_the_engine(
    loop: LoopThread, broker: EmbeddedBroker, tiny_model: Path, vllm_server: str
) -> None:
    host, port = vllm_server.removeprefix("http://").split(":")
    proxy = TcpProxy(host, int(port))
    kafka = kafka_overrides(broker.bootstrap, "health", partitions=1)
    health_port = free_port()
    engine = {"mode": "server", "server_urls": [proxy.url], "served_model_name": "tiny", "request_timeout_s": 10}
    settings = tiny_settings(
        str(tiny_model), engine, **kafka, telemetry={"health_port": health_port},
        worker={"retry_initial_s": 0.2, "retry_max_s": 0.5},
    )  # fmt: skip
    produce(
        broker.bootstrap,
        kafka["topics"]["input"],
        [(b"h-1", image_event("h-1", inline(make_samples(1, seed=51)[0].data)))],
    )
    telemetry = build_telemetry(settings.telemetry)
    holder: dict[str, Any] = {}

    async def start() -> None:
        holder["stop"] = asyncio.Event()
        holder["task"] = asyncio.create_task(run_service(settings, holder["stop"], telemetry=telemetry))

    async def finish() -> Any:
        holder["stop"].set()
        return await holder["task"]

    def probe(path: str) -> tuple[int, dict[str, Any]]:
        response = httpx.get(f"http://127.0.0.1:{health_port}{path}", timeout=5)
        return response.status_code, json.loads(response.text)

    loop.run(start())
    try:
        # engine down: alive, but not ready, and it says why
        wait_for(lambda: "engine unavailable" in " ".join(probe("/ready")[1]["problems"]), 60, "not-ready")
        assert probe("/ready")[0] == 503
        assert probe("/live") == (200, {"ok": True, "problems": []})
        proxy.start()
        wait_for(lambda: probe("/ready")[0] == 200, 60, "ready after the engine returns")
    finally:
        stats = loop.run(finish())
        proxy.stop()
        telemetry.close()
    assert stats.outcomes["verdict"] == 1
