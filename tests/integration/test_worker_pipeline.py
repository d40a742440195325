"""The worker against the real broker and the real vLLM CPU engine: every input gets exactly its outputs."""

from __future__ import annotations

import base64
import json
from collections import Counter
from pathlib import Path

from tests.kafka_helpers import (
    committed,
    image_event,
    inline,
    kafka_overrides,
    produce,
    read_all,
    read_json,
    run_until_handled,
)
from tests.support import LoopThread, tiny_settings
from zoomguard.detector.engines.base import Engine
from zoomguard.kafka.embedded_broker import EmbeddedBroker
from zoomguard.samples import LocalImageServer, make_samples

PARTITIONS = 3


def test_events_in_verdicts_reviews_and_dead_letters_out(
    loop: LoopThread, broker: EmbeddedBroker, tiny_model: Path, inprocess_engine: Engine
) -> None:
    samples = make_samples(7, seed=900, size=(320, 240))
    with LocalImageServer() as server:
        kafka = kafka_overrides(broker.bootstrap, "pipeline", PARTITIONS)
        settings = tiny_settings(
            str(tiny_model),
            **kafka,
            fetch={
                "allowed_networks": ["127.0.0.2/32"],
                "allowed_ports": [server.port],
                "attempts": 2,
                "backoff_s": 0.05,
            },
            worker={"max_event_bytes": 256 * 1024, "max_in_flight": 8, "low_water": 2, "audit_rate": 0.0},
        )
        good: dict[str, bytes] = {}
        records: list[tuple[bytes | None, bytes]] = []
        for index, sample in enumerate(samples):
            event_id = f"good-{index}"
            image = inline(sample.data) if index < 4 else {"url": server.add(sample.name, sample.data)}
            good[event_id] = image_event(event_id, image)
        good["good-repost"] = image_event("good-repost", inline(samples[0].data))
        records.extend((k.encode(), v) for k, v in good.items())
        redirect_to_loopback = server.url(f"/redirect?to=http://127.0.0.1:{server.port}/{samples[5].name}")
        bad = {
            "bad-json": (b"{not json", "parse", "invalid_event"),
            "bad-schema": (json.dumps({"schema_version": 1, "image": {"url": "https://x"}}).encode(), "parse", "invalid_event"),
            "bad-base64": (image_event("bad-base64", {"data_b64": "@@not base64@@"}), "parse", "invalid_event"),
            "bad-image": (image_event("bad-image", inline(b"GIF89a but not really")), "decode", "image_decode"),
            "bad-huge": (image_event("bad-huge", inline(b"\0" * 300_000)), "parse", "invalid_event"),
            "bad-loopback": (image_event("bad-loopback", {"url": f"http://127.0.0.1:{server.port}/{samples[4].name}"}), "fetch", "forbidden_url"),
            "bad-private": (image_event("bad-private", {"url": "http://10.1.2.3/cat.jpg"}), "fetch", "forbidden_url"),
            "bad-metadata": (image_event("bad-metadata", {"url": "http://169.254.169.254/latest/"}), "fetch", "forbidden_url"),
            "bad-redirect": (image_event("bad-redirect", {"url": redirect_to_loopback}), "fetch", "forbidden_url"),
            "bad-ftp": (image_event("bad-ftp", {"url": "ftp://example.com/a.png"}), "parse", "invalid_event"),
            "bad-404": (image_event("bad-404", {"url": server.url("nope.png")}), "fetch", "fetch_failed"),
        }  # fmt: skip
        records.extend((key.encode(), value) for key, (value, _, _) in bad.items())
        metadata = produce(broker.bootstrap, kafka["topics"]["input"], records)

        stats = run_until_handled(loop, settings, inprocess_engine, len(records))

    topics = kafka["topics"]
    verdicts = read_json(broker.bootstrap, topics["verdicts"])
    reviews = read_json(broker.bootstrap, topics["review"])
    dead = read_json(broker.bootstrap, topics["dead_letter"])

    # exactly one verdict per good event, with the event's identity and source coordinates
    assert sorted(v["event_id"] for v in verdicts) == sorted(good)
    by_offset = {(m.partition, m.offset): key for (key, _), m in zip(records, metadata, strict=True)}
    for verdict in verdicts:
        source = verdict["source"]
        assert by_offset[(source["partition"], source["offset"])] == verdict["event_id"].encode()
        assert verdict["content_id"] == f"content-{verdict['event_id']}"
        assert verdict["metadata"] == {"test": True}
        assert verdict["image"]["width"] == 320 and verdict["model"]["family"] == "qwen2_5_vl"
        assert verdict["review_requested"] == (verdict["decision"] == "uncertain")
    # the repost of good-0's image is served by the verdict cache (whichever of the two came second)
    assert sorted(v["event_id"] for v in verdicts if v["cache_hit"]) in (["good-0"], ["good-repost"])
    assert stats.cache_hits == 1

    # a review request for every uncertain verdict (audit sampling off), carrying a Label Studio task
    uncertain = {v["event_id"] for v in verdicts if v["decision"] == "uncertain"}
    assert {r["event_id"] for r in reviews} == uncertain
    for review in reviews:
        task = review["label_studio_task"]
        assert task["data"]["event_id"] == review["event_id"]
        assert task["data"]["image"].startswith(("data:image/jpeg;base64,", "http://127.0.0.2"))
        assert review["reason"] in ("uncertain", "unparseable")

    # a dead letter for each bad input, with its stage, kind and the original bytes
    assert len(dead) == len(bad)
    by_value = {base64.b64decode(d["original_value_b64"]): d for d in dead}
    for name, (value, stage, kind) in bad.items():
        letter = by_value[value]
        assert (letter["stage"], letter["error"]["kind"]) == (stage, kind), name
        assert letter["error"]["message"]
    assert by_value[bad["bad-404"][0]]["attempts"] == 1  # a 404 is not retried
    # outputs are keyed by event id
    assert all(
        r.key == json.loads(r.value)["event_id"].encode() for r in read_all(broker.bootstrap, topics["verdicts"])
    )

    # everything done: committed offsets reach the end of every partition
    ends = Counter(m.partition for m in metadata)
    group = kafka["kafka"]["group_id"]
    assert committed(broker.bootstrap, group, topics["input"], PARTITIONS) == {
        p: (ends[p] if ends[p] else None) for p in range(PARTITIONS)
    }
    assert stats.outcomes == Counter({"verdict": len(good), "dead_letter": len(bad)})
