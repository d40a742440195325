"""`zoomguard review` against the real broker: export the review topic, import Label Studio exports, the webhook."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.kafka_helpers import produce, read_all, read_json, wait_for
from tests.support import free_port
from zoomguard.cli import main
from zoomguard.errors import UnavailableError
from zoomguard.kafka.clients import ensure_topics
from zoomguard.kafka.embedded_broker import EmbeddedBroker
from zoomguard.kafka.reading import read_to_end
from zoomguard.kafka.settings import KafkaSettings
from zoomguard.review.ls_tasks import label_studio_task
from zoomguard.review.publisher import DecisionPublisher, spool_publisher
from zoomguard.review.settings import ReviewSettings
from zoomguard.review.webhook import WebhookService
from zoomguard.schemas.detection import Detection, FirstPass, ImageInfo, ModelInfo, Region, Timings, Usage
from zoomguard.schemas.events import ImageEvent, ReviewRequest, SourceRecord
from zoomguard.schemas.review import ReviewDecision
from zoomguard.worker.routing import route

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "label_studio"
T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def topics_config(broker: EmbeddedBroker, tmp_path: Path, partitions: int = 3) -> tuple[Path, dict[str, str]]:
    tag = uuid.uuid4().hex[:8]
    topics = {"review": f"review.{tag}.requests", "review_decisions": f"review.{tag}.decisions"}
    ensure_topics(KafkaSettings(bootstrap_servers=broker.bootstrap), list(topics.values()), partitions=partitions)
    config = tmp_path / "review.json"
    config.write_text(json.dumps({"kafka": {"bootstrap_servers": broker.bootstrap}, "topics": topics}))
    return config, topics


def review_request(event_id: str, boxes: list[tuple[int, int, int, int]], *, size: tuple[int, int] = (333, 517),
                   p_ai: float = 0.55, when: datetime = T0) -> ReviewRequest:  # fmt: skip
    detection = Detection(
        decision="uncertain",
        p_ai=p_ai,
        reason="low_confidence",
        regions=[
            Region(
                box=box,
                box_norm=(box[0] / size[0], box[1] / size[1], box[2] / size[0], box[3] / size[1]),
                finding=f"odd {i}",
            )
            for i, box in enumerate(boxes)
        ],
        explanation="the reflection may be inconsistent",
        first_pass=FirstPass(verdict="real", explanation="", p_ai=0.4),
        examined=True,
        crops=len(boxes),
        model=ModelInfo(name="tiny", version="zoomguard-test-1", family="qwen2_5_vl"),
        image=ImageInfo(sha256=uuid.uuid4().hex * 2, width=size[0], height=size[1], format="PNG"),
        timings_ms=Timings(),
        usage=Usage(),
    )
    event = ImageEvent.model_validate(
        {"event_id": event_id, "content_id": "c-" + event_id, "submitted_at": "2026-11-24T09:00:00Z",
         "image": {"url": f"https://cdn.example.com/{event_id}.png"}}
    )  # fmt: skip
    source = SourceRecord(topic="images.submitted", partition=0, offset=7)
    routed = route(
        detection,
        event,
        source,
        audit_rate=0,
        review_image=f"https://cdn.example.com/{event_id}.png",
        review_task=label_studio_task,
        now=when,
    )
    assert routed.review is not None
    return routed.review


def produce_requests(
    broker: EmbeddedBroker, topic: str, requests: list[ReviewRequest], extra: tuple[bytes, ...] = ()
) -> None:
    records = [(r.event_id.encode(), r.model_dump_json().encode()) for r in requests]
    produce(broker.bootstrap, topic, records + [(b"junk", value) for value in extra])


def export(config: Path, out: Path) -> list[dict[str, Any]]:
    assert main(["review", "export", "--config", str(config), "--out", str(out), "--no-progress"]) == 0
    return json.loads(out.read_text())


def decisions_on(broker: EmbeddedBroker, topic: str) -> list[ReviewDecision]:
    records = read_all(broker.bootstrap, topic)
    assert all(r.key == json.loads(r.value)["event_id"].encode() for r in records)  # keyed by event_id
    return [ReviewDecision.model_validate_json(r.value) for r in records]


# ---------------------------------------------------------------- export


def test_export_writes_the_latest_task_per_event(broker: EmbeddedBroker, tmp_path: Path) -> None:
    config, topics = topics_config(broker, tmp_path)
    first = review_request("exp-1", [(10, 20, 100, 200)], p_ai=0.5)
    again = review_request("exp-1", [(30, 40, 90, 120), (5, 5, 50, 50)], p_ai=0.6, when=T0 + timedelta(minutes=3))
    other = review_request("exp-2", [])
    produce_requests(broker, topics["review"], [first, other, again], extra=(b"not json", b'{"event_id": "x"}'))

    tasks = export(config, tmp_path / "tasks.json")

    assert [t["data"]["event_id"] for t in tasks] == ["exp-1", "exp-2"]
    latest = tasks[0]
    assert latest["predictions"] == again.label_studio_task["predictions"]  # the model's boxes, percent, score
    assert latest["predictions"][0]["score"] == 0.6
    assert latest["data"]["image"] == "https://cdn.example.com/exp-1.png"
    assert (latest["data"]["image_width"], latest["data"]["image_height"]) == (333, 517)
    assert latest["data"]["model_version"] == "zoomguard-test-1"
    rectangles = [r["value"] for r in latest["predictions"][0]["result"] if r["type"] == "rectanglelabels"]
    assert [(round(v["x"] * 3.33), round(v["y"] * 5.17)) for v in rectangles] == [(30, 40), (5, 5)]


def test_export_of_an_empty_topic_terminates(broker: EmbeddedBroker, tmp_path: Path) -> None:
    config, _ = topics_config(broker, tmp_path)
    assert export(config, tmp_path / "empty.json") == []


def test_export_reads_every_record_up_to_the_end(broker: EmbeddedBroker, tmp_path: Path) -> None:
    config, topics = topics_config(broker, tmp_path, partitions=2)
    requests = [review_request(f"many-{i:03d}", [(1, 1, 9, 9)]) for i in range(120)]
    produce_requests(broker, topics["review"], requests)  # batched: the broker's end offsets under-report here
    tasks = export(config, tmp_path / "many.json")
    assert [t["data"]["event_id"] for t in tasks] == [r.event_id for r in requests]


# ---------------------------------------------------------------- import


def test_import_of_a_json_export_produces_decisions(
    broker: EmbeddedBroker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, topics = topics_config(broker, tmp_path)
    assert main(["review", "import", str(FIXTURES / "export_json.json"), "--config", str(config)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (
        summary["imported"] == 4
        and summary["skipped"]["cancelled"] == 2
        and summary["topic"] == topics["review_decisions"]
    )

    decisions = {d.event_id: d for d in decisions_on(broker, topics["review_decisions"])}
    assert sorted(decisions) == ["evt-ls-1", "evt-ls-2", "evt-ls-7", "evt-ls-8"]
    assert decisions["evt-ls-1"].label == "ai_generated"
    assert [r.box for r in decisions["evt-ls-1"].regions] == [(100, 50, 300, 250), (42, 101, 62, 121)]
    assert decisions["evt-ls-2"].reviewer == "carol@example.com"


def test_import_of_a_json_min_export(broker: EmbeddedBroker, tmp_path: Path) -> None:
    config, topics = topics_config(broker, tmp_path)
    assert main(["review", "import", str(FIXTURES / "export_json_min.json"), "--config", str(config)]) == 0
    labels = {d.event_id: d.label for d in decisions_on(broker, topics["review_decisions"])}
    assert labels == {"evt-min-1": "ai_generated", "evt-min-2": "real"}


def test_import_with_nothing_importable_fails_and_publishes_nothing(broker: EmbeddedBroker, tmp_path: Path) -> None:
    config, topics = topics_config(broker, tmp_path)
    nothing = tmp_path / "skips.json"
    nothing.write_text(json.dumps([{"id": 1, "data": {"event_id": "e"}, "annotations": [{"was_cancelled": True}]}]))
    assert main(["review", "import", str(nothing), "--config", str(config)]) == 1
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    assert main(["review", "import", str(garbage), "--config", str(config)]) == 1
    assert main(["review", "import", str(FIXTURES / "export_json.json"), "--config", str(config), "--dry-run"]) == 0
    assert read_all(broker.bootstrap, topics["review_decisions"]) == []


# ---------------------------------------------------------------- round trip


def label_studio_export(tasks: list[dict[str, Any]], labels: dict[str, str]) -> list[dict[str, Any]]:
    """What Label Studio exports after a reviewer accepted the predicted boxes and chose a verdict.

    Reviewers saw a thumbnail (64x80 here), so Label Studio's original_width/height are not the image's.
    """
    exported = []
    for index, task in enumerate(tasks, start=1):
        result = [
            {**r, "original_width": 64, "original_height": 80}
            for r in task["predictions"][0]["result"]
            if r["type"] == "rectanglelabels"
        ]
        result.append({"id": "v", "from_name": "verdict", "to_name": "image", "type": "choices",
                       "value": {"choices": [labels[task["data"]["event_id"]]]}})  # fmt: skip
        annotation = {"id": 100 + index, "completed_by": {"id": 3, "email": "rev@example.com"}, "result": result,
                      "was_cancelled": False, "ground_truth": False, "created_at": "2026-11-24T12:00:00.000000Z",
                      "updated_at": "2026-11-24T12:01:00.000000Z", "lead_time": 9.5, "task": index}  # fmt: skip
        exported.append({"id": index, "data": task["data"], "annotations": [annotation], "predictions": [index],
                         "created_at": "2026-11-24T11:00:00.000000Z", "updated_at": "2026-11-24T12:01:00.000000Z"})  # fmt: skip
    return exported


def test_round_trip_keeps_event_label_and_boxes(broker: EmbeddedBroker, tmp_path: Path) -> None:
    config, topics = topics_config(broker, tmp_path)
    requests = [
        review_request("rt-1", [(17, 41, 250, 399), (0, 0, 333, 517)]),
        review_request("rt-2", [(101, 203, 102, 204)], size=(4032, 3024)),
        review_request("rt-3", []),
    ]
    produce_requests(broker, topics["review"], requests)
    tasks = export(config, tmp_path / "tasks.json")
    labels = {"rt-1": "ai_generated", "rt-2": "real", "rt-3": "real"}
    done = tmp_path / "label-studio-export.json"
    done.write_text(json.dumps(label_studio_export(tasks, labels)))

    assert main(["review", "import", str(done), "--config", str(config)]) == 0

    decisions = {d.event_id: d for d in decisions_on(broker, topics["review_decisions"])}
    assert {key: d.label for key, d in decisions.items()} == labels
    for request in requests:
        boxes = [r.box for r in decisions[request.event_id].regions]
        expected = [r.box for r in request.verdict.regions]
        assert len(boxes) == len(expected)
        for got, want in zip(boxes, expected, strict=True):
            assert all(abs(a - b) <= 1 for a, b in zip(got, want, strict=True)), (got, want)
        assert decisions[request.event_id].reviewer == "rev@example.com"


# ---------------------------------------------------------------- webhook


def webhook_service(
    bootstrap: str, topic: str, tmp_path: Path, ack_timeout_s: float = 30, **review: Any
) -> tuple[WebhookService, ReviewSettings]:
    """The webhook as the command runs it (spool in tmp_path, flusher publishing to `topic`), on a free port."""
    settings = ReviewSettings(webhook_spool_dir=str(tmp_path / "spool"), ack_timeout_s=ack_timeout_s, **review)
    kafka = KafkaSettings(bootstrap_servers=bootstrap)
    service = WebhookService(settings, lambda: spool_publisher(kafka, topic, ack_timeout_s), port=0)
    return service.start(), settings


def spooled(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "spool").glob("*.json"))


def test_webhook_spools_then_publishes(broker: EmbeddedBroker, tmp_path: Path) -> None:
    _, topics = topics_config(broker, tmp_path)
    service, settings = webhook_service(
        broker.bootstrap, topics["review_decisions"], tmp_path, webhook_max_body_bytes=64 * 1024
    )
    url = f"http://127.0.0.1:{service.port}{settings.webhook_path}"
    try:
        created = httpx.post(url, content=(FIXTURES / "webhook_annotation_created.json").read_bytes(), timeout=30)
        assert created.status_code == 200 and created.json()["event_ids"] == ["evt-hook-1"]
        wait_for(lambda: not spooled(tmp_path), timeout=60, what="the spool to be flushed", interval=0.1)
        assert [(d.event_id, d.label) for d in decisions_on(broker, topics["review_decisions"])] == [
            ("evt-hook-1", "ai_generated")
        ]

        skipped = httpx.post(url, content=(FIXTURES / "webhook_annotation_skipped.json").read_bytes(), timeout=30)
        assert skipped.status_code == 200 and skipped.json()["status"] == "ignored"
        too_big = httpx.post(url, content=b" " * (64 * 1024 + 1), timeout=30)
        assert too_big.status_code == 413 and too_big.json()["error"] == "too_large"
        bad = httpx.post(url, content=b'{"action": "ANNOTATION_CREATED"}', timeout=30)
        assert bad.status_code == 422 and "annotation" in bad.json()["message"]
        health = httpx.get(f"http://127.0.0.1:{service.port}/health", timeout=10)
        assert health.status_code == 200 and health.json()["spool"]["files"] == 0
        assert health.json()["flusher"]["published"] == 1
    finally:
        service.stop()
    assert len(decisions_on(broker, topics["review_decisions"])) == 1


def test_webhook_answers_at_once_while_the_broker_is_down_and_publishes_once_it_is_back(tmp_path: Path) -> None:
    """Label Studio posts once and waits 1 s: the decision must be kept across a broker outage, and sent once."""
    port = free_port()
    topic = f"review.{uuid.uuid4().hex[:8]}.decisions"
    first = EmbeddedBroker(port=port, log_path=tmp_path / "broker-1.log").start()
    try:
        ensure_topics(KafkaSettings(bootstrap_servers=first.bootstrap), [topic], partitions=3)
        service, settings = webhook_service(
            first.bootstrap,
            topic,
            tmp_path,
            ack_timeout_s=5,  # how long a send to the stopped broker takes to fail
            webhook_flush_backoff_s=0.2,
            webhook_flush_backoff_max_s=1.0,
        )
        url = f"http://127.0.0.1:{service.port}{settings.webhook_path}"
        # the flusher's producer is connected and has published once before the outage
        created = httpx.post(url, content=(FIXTURES / "webhook_annotation_created.json").read_bytes(), timeout=30)
        assert created.status_code == 200
        wait_for(lambda: not spooled(tmp_path), timeout=60, what="the first decision to be published", interval=0.1)
    finally:
        first.stop()  # the outage: an in-memory broker, so it comes back empty
    second: EmbeddedBroker | None = None
    try:
        started = time.monotonic()
        updated = httpx.post(url, content=(FIXTURES / "webhook_annotation_updated.json").read_bytes(), timeout=30)
        elapsed = time.monotonic() - started

        assert updated.status_code == 200, updated.text
        assert updated.json()["status"] == "accepted" and updated.json()["event_ids"] == ["evt-hook-1"]
        assert elapsed < 0.5, f"answered after {elapsed:.3f} s; Label Studio gives up after 1 s"
        assert len(spooled(tmp_path)) == 1
        health = f"http://127.0.0.1:{service.port}/health"
        wait_for(lambda: httpx.get(health, timeout=5).json()["flusher"]["failures"] >= 1, 60, "a failed flush")
        assert spooled(tmp_path) and httpx.get(health, timeout=5).json()["spool"]["files"] == 1

        second = EmbeddedBroker(port=port, log_path=tmp_path / "broker-2.log").start()
        ensure_topics(KafkaSettings(bootstrap_servers=second.bootstrap), [topic], partitions=3)
        wait_for(lambda: not spooled(tmp_path), timeout=90, what="the spool to be flushed after the outage")

        records = read_all(second.bootstrap, topic)
        assert len(records) == 1, [r.value for r in records]  # exactly once
        (record,) = records
        published = ReviewDecision.model_validate_json(record.value)
        assert record.key == b"evt-hook-1" and (published.event_id, published.label) == ("evt-hook-1", "real")
        assert published.origin == "label_studio_webhook"
        assert httpx.get(health, timeout=5).json()["flusher"]["failures"] == 0
    finally:
        service.stop()
        if second is not None:
            second.stop()


def test_webhook_command_runs_until_sigterm(broker: EmbeddedBroker, tmp_path: Path) -> None:
    config, topics = topics_config(broker, tmp_path)
    port = free_port()
    env = {
        **os.environ,
        "ZOOMGUARD_REVIEW__WEBHOOK_TOKEN": "s3cret",
        "ZOOMGUARD_TELEMETRY__LOG_JSON": "true",
        "ZOOMGUARD_REVIEW__WEBHOOK_SPOOL_DIR": str(tmp_path / "spool"),
    }
    command = [sys.executable, "-m", "zoomguard.cli", "review", "webhook", "--port", str(port), "--config", str(config)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _healthy(base), timeout=60, what="the webhook to listen")
        body = (FIXTURES / "webhook_annotation_updated.json").read_bytes()
        path = ReviewSettings().webhook_path
        assert httpx.post(base + path, content=body, timeout=30).status_code == 401
        reply = httpx.post(base + path, content=body, headers={"X-Zoomguard-Token": "s3cret"}, timeout=30)
        assert reply.status_code == 200, reply.text
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr.decode()[-3000:]
    assert "s3cret" not in stderr.decode()
    # SIGTERM right after the answer: what was spooled is published before the exit
    assert [(d.event_id, d.label) for d in decisions_on(broker, topics["review_decisions"])] == [("evt-hook-1", "real")]
    assert spooled(tmp_path) == []


def _healthy(base: str) -> bool:
    try:
        return httpx.get(base + "/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        time.sleep(0.2)
        return False


def test_read_json_helper_sees_the_same_decisions(broker: EmbeddedBroker, tmp_path: Path) -> None:
    """The decision events are plain JSON documents other tools can read (collect, dashboards)."""
    _, topics = topics_config(broker, tmp_path)
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap)
    publisher = DecisionPublisher(kafka, topics["review_decisions"], ack_timeout_s=30)
    decision = ReviewDecision(event_id="plain-1", label="real", reviewer="r", decided_at=T0, origin="test")
    try:
        publisher.publish([decision])
    finally:
        publisher.close()
    (value,) = read_json(broker.bootstrap, topics["review_decisions"])
    assert value["event_id"] == "plain-1" and value["label"] == "real" and value["schema_version"] == 1


def test_export_gives_up_at_its_deadline(broker: EmbeddedBroker, tmp_path: Path) -> None:
    _, topics = topics_config(broker, tmp_path)
    produce_requests(broker, topics["review"], [review_request("late-1", [])])
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap)
    with pytest.raises(UnavailableError, match="export_timeout_s"):
        list(read_to_end(kafka, topics["review"], timeout_s=1e-9))


def test_a_stalled_client_is_dropped_and_others_are_served(broker: EmbeddedBroker, tmp_path: Path) -> None:
    _, topics = topics_config(broker, tmp_path)
    service, settings = webhook_service(
        broker.bootstrap, topics["review_decisions"], tmp_path, webhook_read_timeout_s=1.0
    )
    try:
        with socket.create_connection(("127.0.0.1", service.port), timeout=30) as stalled:
            head = f'POST {settings.webhook_path} HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{{"action"'
            stalled.sendall(head.encode())
            body = (FIXTURES / "webhook_annotation_created.json").read_bytes()
            reply = httpx.post(f"http://127.0.0.1:{service.port}{settings.webhook_path}", content=body, timeout=30)
            assert reply.status_code == 200
            assert stalled.recv(1024) == b""  # closed by the server, without an answer
        wait_for(lambda: not spooled(tmp_path), timeout=60, what="the spool to be flushed", interval=0.1)
    finally:
        service.stop()
    assert [d.event_id for d in decisions_on(broker, topics["review_decisions"])] == ["evt-hook-1"]
