"""`zoomguard demo`: the whole pipeline on embedded defaults, nothing to download or configure.

Embedded broker, tiny offline model, topics created, generated images sent inline and by URL (from a
local server), a few bad events among them; the worker runs until every event has an output, then the
verdicts, review requests and dead letters are printed and an annotated HTML gallery is written.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image
from tqdm import tqdm

from zoomguard.app.bank import ensure_bank_topic, publish_entries
from zoomguard.app.config import Settings, load_settings
from zoomguard.commands.common import Command, quiet_engine_logs
from zoomguard.commands.demo_report import gallery_html, report_text
from zoomguard.detector.drawing import annotate
from zoomguard.detector.tiny_model import TINY_DETECTOR_SETTINGS, TINY_ENGINE_SETTINGS, build_tiny_model
from zoomguard.kafka.clients import ensure_topics, make_producer
from zoomguard.kafka.embedded_broker import EmbeddedBroker
from zoomguard.kafka.reading import read_to_end
from zoomguard.known.bank import BankEntry, review_entry_id
from zoomguard.known.hashing import pdq_of_image
from zoomguard.media.images import decode_image
from zoomguard.samples import (
    LocalImageServer,
    encode,
    image_event_json,
    make_image,
    make_samples,
    with_a1111_parameters,
    with_xmp_source_type,
)
from zoomguard.schemas.detection import Detection

if TYPE_CHECKING:
    from zoomguard.worker.processor import Outcome

# The tiny model's random weights put p_ai near 0.5, so the demo narrows the uncertain band to show all
# three routes; everything else is the tiny model's CPU settings.
DEMO_DETECTOR: dict[str, Any] = {**TINY_DETECTOR_SETTINGS, "ai_threshold": 0.47, "real_threshold": 0.44}
# Join a group in ~1 s on the embedded broker (real Kafka refuses sessions under 6 s: demo only).
DEMO_KAFKA: dict[str, Any] = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 400, "group_id": "zoomguard-demo"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("demo-out"), help="output folder (default demo-out)")
    parser.add_argument("--inline", type=int, default=8, help="images sent inline")
    parser.add_argument("--by-url", type=int, default=4, help="images sent by URL")


def run(args: argparse.Namespace) -> int:
    from zoomguard.telemetry.logs import configure_logging

    quiet_engine_logs()
    configure_logging("WARNING")
    return asyncio.run(run_demo(args.out, inline=args.inline, by_url=args.by_url))


COMMAND = Command("demo", "embedded broker + tiny model + sample images: the whole pipeline", add_arguments, run)


@dataclass
class DemoEvents:
    records: list[tuple[bytes, bytes]] = field(default_factory=list)  # (key, value)
    images: dict[str, bytes] = field(default_factory=dict)  # event_id -> image bytes (for the gallery)
    bank: list[BankEntry] = field(default_factory=list)  # decided before the demo: the known-content bank


def viral_image() -> Image.Image:
    """A scene with coarse colour texture, as photos have (a flat generated scene hashes with PDQ quality < 50)."""
    scene = make_image(906, (640, 480))
    texture = [Image.effect_noise((80, 60), 60) for _ in range(3)]
    return Image.blend(scene, Image.merge("RGB", texture).resize(scene.size, Image.Resampling.BICUBIC), 0.4)


def known_copy(original: Image.Image) -> tuple[BankEntry, bytes]:
    """A reviewer's earlier decision on `original`, and the copy another app made of it (smaller, JPEG q80)."""
    entry = BankEntry(
        entry_id=review_entry_id("demo-viral-original"),
        pdq=pdq_of_image(original).hex,
        quality=100,
        label="ai_generated",
        source="review",
        decided_by="demo-reviewer",
        decided_at=datetime(2026, 12, 1, 9, 0, tzinfo=UTC),
        event_id="demo-viral-original",
    )
    buffer = io.BytesIO()
    original.resize((original.width * 3 // 4, original.height * 3 // 4)).save(buffer, "JPEG", quality=80)
    return entry, buffer.getvalue()


def build_events(server: LocalImageServer, inline: int, by_url: int) -> DemoEvents:
    events = DemoEvents()
    samples = make_samples(inline + by_url, seed=42)
    for index, sample in enumerate(samples):
        event_id = f"demo-{index:03d}"
        image: dict[str, str]
        if index < inline:
            image = {"data_b64": base64.b64encode(sample.data).decode()}
        else:
            image = {"url": server.add(sample.name, sample.data)}
        events.images[event_id] = sample.data
        events.records.append(_event(event_id, image))
    # uploads that declare themselves AI-generated in their own bytes: decided by the evidence stage
    for event_id, data in marked_samples().items():
        events.images[event_id] = data
        events.records.append(_event(event_id, {"data_b64": base64.b64encode(data).decode()}))
    # a re-encoded, resized copy of an image a reviewer already decided: decided by the known-content bank
    entry, copy = known_copy(viral_image())
    events.bank.append(entry)
    events.images["demo-viral-copy"] = copy
    events.records.append(_event("demo-viral-copy", {"data_b64": base64.b64encode(copy).decode()}))
    # a repost of the first image: served from the verdict cache
    events.images["demo-repost"] = samples[0].data
    events.records.append(_event("demo-repost", {"data_b64": base64.b64encode(samples[0].data).decode()}))
    bad = {
        "bad-not-an-image": {"data_b64": base64.b64encode(b"definitely not an image").decode()},
        "bad-metadata-url": {"url": "http://169.254.169.254/latest/meta-data/"},  # refused before connecting
        "bad-404": {"url": server.url("missing.png")},
    }
    for event_id, image in bad.items():
        events.records.append(_event(event_id, image))
    events.records.append((b"broken", b"{this is not json"))
    return events


def marked_samples() -> dict[str, bytes]:
    """Event id -> an upload carrying a mark the evidence stage reads (one per kind the demo can make)."""
    from zoomguard.evidence.demo_credentials import make_chain, sign
    from zoomguard.evidence.demo_watermark import embed_watermark

    signer = make_chain("zoomguard demo generator")  # a throw-away chain: valid signature, trusted by nobody
    return {
        "mark-c2pa": sign(signer, encode(make_image(900, (480, 360)), "JPEG"), "image/jpeg"),
        "mark-xmp": with_xmp_source_type(make_image(901, (480, 360))),
        "mark-a1111": with_a1111_parameters(make_image(902, (480, 360))),
        # lossless, as the reference pipelines save it: JPEG with 4:2:0 chroma would destroy the mark
        "mark-sdxl": encode(embed_watermark(make_image(904, (480, 360)), "sdxl"), "PNG"),
    }


def _event(event_id: str, image: dict[str, str]) -> tuple[bytes, bytes]:
    content_id = f"post-{uuid.uuid5(uuid.NAMESPACE_URL, event_id).hex[:8]}"
    value = image_event_json(event_id, image, content_id=content_id, metadata={"source": "zoomguard-demo"})
    return event_id.encode(), value


def demo_settings(model_dir: Path, bootstrap: str, server: LocalImageServer) -> Settings:
    return load_settings(
        overrides={
            "engine": {"model": str(model_dir), **TINY_ENGINE_SETTINGS},
            "detector": DEMO_DETECTOR,
            "kafka": {"bootstrap_servers": bootstrap, **DEMO_KAFKA},
            "fetch": {"allowed_networks": [f"{server.host}/32"], "allowed_ports": [server.port], "attempts": 2},
            "worker": {"max_in_flight": 32, "low_water": 8, "audit_rate": 0.1},
        }
    )


async def run_demo(out_dir: Path, inline: int = 8, by_url: int = 4) -> int:
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"zoomguard demo: writing to {out_dir}", file=sys.stderr)
    model_dir = out_dir / "tiny-model"
    if not (model_dir / "config.json").is_file():
        print("  building the tiny offline model ...", file=sys.stderr)
        build_tiny_model(model_dir)
    with EmbeddedBroker(log_path=out_dir / "broker.log") as broker, LocalImageServer() as server:
        events = build_events(server, inline, by_url)
        settings = demo_settings(model_dir, broker.bootstrap, server)
        return await _run(settings, events, out_dir)


async def _run(settings: Settings, events: DemoEvents, out_dir: Path) -> int:
    from zoomguard.app.worker_service import run_service

    topics = settings.topics
    ensure_topics(settings.kafka, [topics.input, topics.verdicts, topics.review, topics.dead_letter])
    ensure_bank_topic(settings.kafka, topics.known)
    publish_entries(settings.kafka, topics.known, events.bank, timeout_s=30)
    producer = make_producer(settings.kafka)
    for key, value in events.records:
        producer.send(topics.input, key=key, value=value)
    producer.flush()
    producer.close()
    print(f"  produced {len(events.records)} events to {topics.input}; starting the worker", file=sys.stderr)

    total = len(events.records)
    stop = asyncio.Event()
    bar = tqdm(total=total, desc="  events handled", unit="ev", file=sys.stderr)

    def progress(outcome: Outcome) -> None:
        bar.update(1)
        if bar.n >= total:
            stop.set()

    try:
        await run_service(settings, stop, on_outcome=progress)
    finally:
        bar.close()
    outputs = read_outputs(settings)
    print(report_text(outputs))
    gallery = write_gallery(outputs, events, out_dir)
    print(f"\nannotated images and gallery: {gallery}")
    return 0


def read_outputs(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    """Everything on the three output topics, each read to its end."""
    names = (settings.topics.verdicts, settings.topics.review, settings.topics.dead_letter)
    return {
        name: [json.loads(r.value) for r in read_to_end(settings.kafka, name, timeout_s=60, timeout_setting="demo")]
        for name in names
    }


def write_gallery(outputs: dict[str, list[dict[str, Any]]], events: DemoEvents, out_dir: Path) -> Path:
    """Each verdict's image with its boxes drawn, and an HTML page of them all."""
    gallery = out_dir / "gallery"
    gallery.mkdir(exist_ok=True)
    drawn = []
    for verdict in sorted(next(iter(outputs.values())), key=lambda v: v["event_id"]):
        data = events.images.get(verdict["event_id"])
        if data is None:
            continue
        detection = Detection.model_validate({k: verdict[k] for k in Detection.model_fields})
        name = f"{verdict['event_id']}.png"
        annotate(decode_image(data).image, detection).save(gallery / name)
        drawn.append((name, verdict))
    page = gallery / "index.html"
    page.write_text(gallery_html(drawn))
    return page
