"""`zoomguard collect` against the real broker: decisions + review requests + original input records -> dataset."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.kafka_helpers import image_event, inline, kafka_overrides, produce, read_json, run_until_handled
from tests.support import LoopThread, tiny_settings
from zoomguard.app.retrain import collect_dataset
from zoomguard.cli import main
from zoomguard.dataset.records import read_manifest, read_split
from zoomguard.detector.engines.base import Engine
from zoomguard.kafka.clients import ensure_topics
from zoomguard.kafka.embedded_broker import EmbeddedBroker
from zoomguard.kafka.settings import KafkaSettings
from zoomguard.review.ls_tasks import label_studio_task
from zoomguard.samples import LocalImageServer, image_event_json, make_samples
from zoomguard.schemas.detection import Detection, FirstPass, ImageInfo, ModelInfo, Region, Timings, Usage
from zoomguard.schemas.events import ImageEvent, ReviewRequest, SourceRecord
from zoomguard.schemas.review import ReviewDecision
from zoomguard.worker.routing import route

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


class Topics:
    def __init__(self, broker: EmbeddedBroker):
        tag = uuid.uuid4().hex[:8]
        self.input = f"collect.{tag}.in"
        self.review = f"collect.{tag}.review"
        self.decisions = f"collect.{tag}.decisions"
        ensure_topics(KafkaSettings(bootstrap_servers=broker.bootstrap), [self.input, self.review, self.decisions], 3)


def config_file(tmp_path: Path, broker: EmbeddedBroker, topics: Topics, image_port: int) -> Path:
    config = {
        "kafka": {"bootstrap_servers": broker.bootstrap},
        "topics": {"input": topics.input, "review": topics.review, "review_decisions": topics.decisions},
        "fetch": {"allowed_networks": ["127.0.0.0/8"], "allowed_ports": [image_port], "attempts": 1},
        "review": {"test_fraction": 0.5, "collect_record_timeout_s": 10},
    }
    path = tmp_path / "collect.json"
    path.write_text(json.dumps(config))
    return path


def review_request(event: ImageEvent, data: bytes, size: tuple[int, int], source: SourceRecord, task_image: str,
                   p_ai: float = 0.55) -> ReviewRequest:  # fmt: skip
    detection = Detection(
        decision="uncertain",
        p_ai=p_ai,
        p_ai_raw=p_ai,
        reason="low_confidence",
        regions=[Region(box=(1, 1, 20, 20), box_norm=(0, 0, 0.1, 0.1), finding="odd")],
        explanation="unsure",
        first_pass=FirstPass(verdict="real", explanation="", p_ai=0.4),
        examined=True,
        model=ModelInfo(name="tiny", version="served-v3", family="qwen2_5_vl"),
        image=ImageInfo(sha256=hashlib.sha256(data).hexdigest(), width=size[0], height=size[1], format="PNG"),
        timings_ms=Timings(),
        usage=Usage(),
    )
    routed = route(
        detection, event, source, audit_rate=0, review_image=task_image, review_task=label_studio_task, now=T0
    )
    assert routed.review is not None
    return routed.review


def decision(event_id: str, label: str, minutes: int = 0, **extra: Any) -> bytes:
    body = {"event_id": event_id, "label": label, "reviewer": "rev", "decided_at": T0 + timedelta(minutes=minutes)}
    return ReviewDecision.model_validate({**body, **extra}).model_dump_json().encode()


def collect(config: Path, out: Path, capsys: pytest.CaptureFixture[str], progress: bool = False) -> dict[str, Any]:
    quiet = [] if progress else ["--no-progress"]
    assert main(["collect", "--config", str(config), "--out", str(out), *quiet]) == 0
    captured = capsys.readouterr()
    return {**json.loads(captured.out), "stderr": captured.err}


def test_collect_builds_the_dataset_from_decisions_and_original_images(
    broker: EmbeddedBroker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    topics = Topics(broker)
    samples = make_samples(6, seed=900, size=(160, 120))
    images = {f"img-{i}": s.data for i, s in enumerate(samples)}
    with LocalImageServer() as server:
        config = config_file(tmp_path, broker, topics, server.port)
        by_url = server.add("by-url.png", images["img-1"])
        task_only = server.add("task-only.png", images["img-3"])
        server.add("changed.png", images["img-5"])  # served where img-4 used to be: must be refused

        # the original uploads: inline, by URL, and one whose record we will point past the end
        uploads = {
            "ev-inline": {"data_b64": base64.b64encode(images["img-0"]).decode()},
            "ev-url": {"url": by_url},
            "ev-changed": {"url": server.url("changed.png")},
        }
        metas = produce(
            broker.bootstrap,
            topics.input,
            [(e.encode(), image_event_json(e, img, metadata={"source": "feed-a"})) for e, img in uploads.items()],
        )
        sources = {
            e: SourceRecord(topic=topics.input, partition=m.partition, offset=m.offset)
            for e, m in zip(uploads, metas, strict=True)
        }
        events = {e: ImageEvent.model_validate_json(image_event_json(e, img)) for e, img in uploads.items()}
        thumb = "data:image/jpeg;base64,/9j/4AAQSkZJRgABAQ"  # what inline uploads show reviewers
        gone = SourceRecord(topic=topics.input, partition=0, offset=10_000)
        task_event = ImageEvent.model_validate_json(image_event_json("ev-task", {"url": task_only}))
        requests = [
            review_request(events["ev-inline"], images["img-0"], (160, 120), sources["ev-inline"], thumb, 0.61),
            review_request(events["ev-url"], images["img-1"], (160, 120), sources["ev-url"], by_url),
            review_request(task_event, images["img-3"], (160, 120), gone, task_only),
            review_request(events["ev-changed"], images["img-4"], (160, 120), sources["ev-changed"], thumb),
        ]
        produce(
            broker.bootstrap, topics.review, [(r.event_id.encode(), r.model_dump_json().encode()) for r in requests]
        )

        own_image = {"data_b64": base64.b64encode(images["img-2"]).decode()}
        produce(
            broker.bootstrap,
            topics.decisions,
            [
                (b"ev-inline", decision("ev-inline", "ai_generated", 1, explanation="first look")),
                (b"ev-inline", decision("ev-inline", "real", 9, regions=[{"box": (5, 5, 500, 60), "finding": "sky"}])),
                (b"ev-inline", decision("ev-inline", "ai_generated", 4)),  # older, arrives last
                (b"ev-url", decision("ev-url", "ai_generated", 2, explanation="melted hands")),
                (b"ev-own", decision("ev-own", "real", 0, image=own_image, source="import")),
                (b"ev-task", decision("ev-task", "ai_generated", 0)),
                (b"ev-changed", decision("ev-changed", "real", 0)),
                (b"ev-nowhere", decision("ev-nowhere", "real", 0)),
                (b"junk", b'{"event_id": "ev-bad", "label": "perhaps"}'),
                (b"junk", b"\xff not json"),
            ],
        )

        out = tmp_path / "dataset"
        summary = collect(config, out, capsys)

    assert summary["records"] == 4 and summary["decisions"] == 6
    assert summary["skipped"] == {
        "invalid_decision": 2,
        "superseded": 2,
        "image_mismatch": 1,
        "no_image_source": 1,
    }
    assert summary["image_sources"] == {"decision_image": 1, "input_record": 2, "task_url": 1}
    assert "skipped ev-changed: image_mismatch" in summary["stderr"]

    records = {r.event_id: r for split in ("train", "test") for r in read_split(out, split)}
    assert sorted(records) == ["ev-inline", "ev-own", "ev-task", "ev-url"]
    expected_images = {"ev-inline": "img-0", "ev-url": "img-1", "ev-own": "img-2", "ev-task": "img-3"}
    for event_id, name in expected_images.items():
        record = records[event_id]
        assert record.image_bytes == images[name]  # the original bytes, never the thumbnail
        assert record.image_sha256 == hashlib.sha256(images[name]).hexdigest()
        assert (record.width, record.height) == (160, 120)
    inline = records["ev-inline"]
    assert (inline.label, inline.explanation) == ("real", None)  # the latest decision, whole
    assert inline.boxes == [(5, 5, 160, 60)] and inline.findings == ["sky"]
    assert (inline.served_p_ai, inline.served_model_version) == (0.61, "served-v3")
    assert (inline.source, inline.content_id) == ("feed-a", "content-ev-inline")
    assert records["ev-url"].explanation == "melted hands"
    assert records["ev-own"].source == "import" and records["ev-own"].served_p_ai is None
    assert records["ev-task"].source == "unknown"

    manifest: dict[str, Any] = read_manifest(out)
    assert manifest["counts"] == {
        "train": sum(r.split == "train" for r in records.values()),
        "test": sum(r.split == "test" for r in records.values()),
    }
    assert [s["event_id"] for s in manifest["skipped_events"]] == ["ev-changed", "ev-nowhere"]

    import datasets

    present = [split for split, n in manifest["counts"].items() if n]
    loaded = datasets.load_dataset("parquet", data_dir=str(out))
    assert sorted(loaded) == sorted(present)
    assert sorted(row["event_id"] for split in loaded for row in loaded[split]) == sorted(records)


def test_recollecting_is_deterministic_and_keeps_splits(
    broker: EmbeddedBroker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    topics = Topics(broker)
    samples = make_samples(24, seed=950, size=(96, 64))
    config = config_file(tmp_path, broker, topics, 8080)
    first: list[tuple[bytes | None, bytes]] = [
        (f"ev-{i:02d}".encode(), decision(f"ev-{i:02d}", "real" if i % 2 else "ai_generated", 0,
                                          image={"data_b64": base64.b64encode(s.data).decode()}))
        for i, s in enumerate(samples[:16])
    ]  # fmt: skip
    produce(broker.bootstrap, topics.decisions, first)

    collect(config, tmp_path / "a", capsys)
    progress = collect(config, tmp_path / "b", capsys, progress=True)["stderr"]
    assert "collect decisions" in progress and "collect images" in progress and "16/16" in progress
    shards = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert shards == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    for shard in shards:
        assert (tmp_path / "a" / shard).read_bytes() == (tmp_path / "b" / shard).read_bytes(), shard

    before = {r.event_id: r.split for split in ("train", "test") for r in read_split(tmp_path / "a", split)}
    assert set(before.values()) == {"train", "test"}  # both splits are exercised
    later: list[tuple[bytes | None, bytes]] = [
        (
            f"ev-{i:02d}".encode(),
            decision(f"ev-{i:02d}", "real", 5, image={"data_b64": base64.b64encode(s.data).decode()}),
        )
        for i, s in enumerate(samples)
    ]  # more events, and new decisions (relabels) for the old ones
    produce(broker.bootstrap, topics.decisions, later)
    summary = collect(config, tmp_path / "a", capsys)  # into the same directory: replaced, not appended
    assert summary["records"] == 24 and summary["skipped"] == {"superseded": 16}
    after = {r.event_id: r for split in ("train", "test") for r in read_split(tmp_path / "a", split)}
    assert {e: after[e].split for e in before} == before
    assert all(r.label == "real" for r in after.values())


def test_collect_after_the_real_worker_takes_the_original_images(
    loop: LoopThread, broker: EmbeddedBroker, tiny_model: Path, inprocess_engine: Engine, tmp_path: Path
) -> None:
    """The worker's own review requests (inline uploads carry thumbnails) lead collect back to the originals."""
    samples = make_samples(3, seed=970, size=(320, 240))
    with LocalImageServer() as server:
        kafka = kafka_overrides(broker.bootstrap, "collect-worker", 2)
        settings = tiny_settings(
            str(tiny_model),
            **kafka,
            fetch={"allowed_networks": ["127.0.0.2/32"], "allowed_ports": [server.port]},
            worker={"audit_rate": 1.0, "review_thumbnail_side": 64},  # every verdict goes to review
            review={"test_fraction": 0.5},
        )
        uploads = {
            "w-0": inline(samples[0].data),
            "w-1": inline(samples[1].data),
            "w-2": {"url": server.add(samples[2].name, samples[2].data)},
        }
        produce(
            broker.bootstrap, kafka["topics"]["input"], [(e.encode(), image_event(e, i)) for e, i in uploads.items()]
        )
        run_until_handled(loop, settings, inprocess_engine, len(uploads))
        reviews = {r["event_id"]: r for r in read_json(broker.bootstrap, kafka["topics"]["review"])}
        assert sorted(reviews) == sorted(uploads)
        assert reviews["w-0"]["label_studio_task"]["data"]["image"].startswith("data:image/jpeg")  # a thumbnail
        produce(
            broker.bootstrap,
            kafka["topics"]["review_decisions"],
            [(e.encode(), decision(e, "real" if e == "w-1" else "ai_generated")) for e in uploads],
        )
        report = loop.run(collect_dataset(settings, tmp_path / "ds"))

    assert report.skipped == {} and report.image_sources == {"input_record": 3}
    records = {r.event_id: r for split in ("train", "test") for r in read_split(tmp_path / "ds", split)}
    for index, event_id in enumerate(sorted(uploads)):
        record, verdict = records[event_id], reviews[event_id]["verdict"]
        assert record.image_bytes == samples[index].data and (record.width, record.height) == (320, 240)
        assert record.served_model_version == verdict["model"]["version"]
        assert record.served_p_ai == (verdict["p_ai_raw"] if verdict["p_ai_raw"] is not None else verdict["p_ai"])
        assert record.source == "unknown" and record.content_id == f"content-{event_id}"
    assert records["w-1"].label == "real" and records["w-0"].label == "ai_generated"
