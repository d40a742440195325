"""The webhook's durable spool and its flusher, with a fake broker: nothing accepted is lost or sent early."""

from __future__ import annotations

import errno
import json
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from zoomguard.errors import ConfigError, UnavailableError
from zoomguard.review.settings import ReviewSettings
from zoomguard.review.spool import (
    REJECTED_DIR,
    TEMP_PREFIX,
    DecisionSpool,
    SpoolFlusher,
    SpoolRefused,
    backoff_delay,
    decode_batch,
    encode_batch,
    spool_name,
)
from zoomguard.review.webhook import WebhookApp, WebhookService
from zoomguard.schemas.review import ReviewDecision

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "label_studio"
CREATED = (FIXTURES / "webhook_annotation_created.json").read_bytes()
T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def decision(event_id: str, label: str = "real") -> ReviewDecision:
    return ReviewDecision.model_validate(
        {"event_id": event_id, "label": label, "reviewer": "r@example.com", "decided_at": T0, "origin": "test"}
    )


def open_spool(path: Path, max_files: int = 100, max_bytes: int = 1 << 20) -> DecisionSpool:
    return DecisionSpool.open(path, max_files=max_files, max_bytes=max_bytes)


class FakeBroker:
    """Hands out sinks; records what was acknowledged. Fails the first `down` connects, and each event id in
    `fail_once` on its first send."""

    def __init__(self, down: int = 0, fail_once: set[str] | None = None, on_publish: Any = None):
        self.down = down
        self.fail_once = set(fail_once or ())
        self.on_publish = on_publish
        self.acked: list[str] = []
        self.sinks: list[FakeSink] = []
        self.connects = 0

    def connect(self) -> FakeSink:
        self.connects += 1
        if self.down:
            self.down -= 1
            raise UnavailableError("cannot reach Kafka")
        sink = FakeSink(self)
        self.sinks.append(sink)
        return sink


class FakeSink:
    def __init__(self, broker: FakeBroker):
        self.broker = broker
        self.aborted = False
        self.closed = False

    def publish(self, decisions: list[ReviewDecision]) -> None:
        assert not self.aborted, "a sink that failed must not be used again"
        for item in decisions:
            if self.broker.on_publish is not None:
                self.broker.on_publish(item)
            if item.event_id in self.broker.fail_once:
                self.broker.fail_once.discard(item.event_id)
                raise UnavailableError(f"no ack for {item.event_id}")
            self.broker.acked.append(item.event_id)

    def abort(self) -> None:
        self.aborted = True

    def close(self) -> None:
        self.closed = True


def flusher_for(spool: DecisionSpool, broker: FakeBroker, **kwargs: Any) -> SpoolFlusher:
    return SpoolFlusher(spool, broker.connect, backoff_s=0.01, backoff_max_s=0.05, **kwargs)


# ---------------------------------------------------------------- writing


def test_a_write_is_one_complete_file_and_reads_back(tmp_path: Path) -> None:
    spool = open_spool(tmp_path / "spool")
    first = spool.write([decision("e-1"), decision("e-2", "ai_generated")])
    second = spool.write([decision("e-3")])

    assert spool.pending() == [first, second]
    assert [d.event_id for d in spool.load(first)] == ["e-1", "e-2"] and spool.load(first)[1].label == "ai_generated"
    assert not [p for p in (tmp_path / "spool").iterdir() if p.name.startswith(TEMP_PREFIX)]
    depth = spool.depth()
    assert (depth.files, depth.bytes) == (2, first.stat().st_size + second.stat().st_size)
    assert depth.oldest_age_s is not None and depth.oldest_age_s >= 0


def test_names_keep_the_write_order_when_the_clock_steps_back(tmp_path: Path) -> None:
    ticks = iter([5_000, 4_000, 4_000, 3_000])
    spool = DecisionSpool.open(tmp_path, max_files=10, max_bytes=1 << 20, clock_ns=lambda: next(ticks))
    paths = [spool.write([decision(f"e-{i}")]) for i in range(3)]
    assert spool.pending() == paths and [p.name for p in paths] == [spool_name(s) for s in (5_000, 5_001, 5_002)]


def test_the_file_format_round_trips_and_refuses_what_is_not_a_spool_file() -> None:
    data = encode_batch([decision("e-1")], T0)
    assert decode_batch(data) == [decision("e-1")]
    with pytest.raises(ValueError):
        encode_batch([], T0)


def test_a_directory_has_one_owner(tmp_path: Path) -> None:
    first = open_spool(tmp_path / "spool")
    with pytest.raises(ConfigError, match="in use by another process"):
        open_spool(tmp_path / "spool")
    first.close()
    open_spool(tmp_path / "spool").close()  # free again once the owner is gone
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ConfigError, match="persistent volume"):
        open_spool(tmp_path / "a-file" / "spool")


# ---------------------------------------------------------------- refusing


def test_a_full_spool_is_refused_with_507_and_keeps_what_it_has(tmp_path: Path) -> None:
    spool = open_spool(tmp_path / "spool", max_files=2)
    app = WebhookApp(ReviewSettings(), spool.write)
    path = ReviewSettings().webhook_path
    assert [app.handle("POST", path, {}, CREATED).status for _ in range(2)] == [200, 200]

    refused = app.handle("POST", path, {}, CREATED)

    assert refused.status == 507 and refused.body["error"] == "spool_full"
    assert "review.webhook_spool_max_files=2" in refused.body["message"]
    assert spool.depth().files == 2 and len(spool.pending()) == 2
    broker = FakeBroker()
    assert flusher_for(spool, broker).flush()  # the broker is back: room again
    assert app.handle("POST", path, {}, CREATED).status == 200 and broker.acked == ["evt-hook-1"] * 2


def test_the_byte_limit_refuses_too(tmp_path: Path) -> None:
    size = len(encode_batch([decision("e-1")], T0))
    spool = open_spool(tmp_path / "spool", max_bytes=size + size // 2)
    spool.write([decision("e-1")])
    with pytest.raises(SpoolRefused) as refused:
        spool.write([decision("e-2")])
    assert (refused.value.status, refused.value.error) == (507, "spool_full")
    assert spool.depth().files == 1


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [(errno.ENOSPC, 507, "disk_full"), (errno.EDQUOT, 507, "disk_full"), (errno.EROFS, 503, "spool_unwritable")],
)
def test_a_write_the_disk_refuses_is_answered_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, status: int, error: str
) -> None:
    spool = open_spool(tmp_path / "spool")

    def failing_fsync(fd: int) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "fsync", failing_fsync)
    reply = WebhookApp(ReviewSettings(), spool.write).handle("POST", ReviewSettings().webhook_path, {}, CREATED)
    monkeypatch.undo()

    assert (reply.status, reply.body["error"]) == (status, error)
    assert os.strerror(code) in reply.body["message"]
    assert sorted(p.name for p in (tmp_path / "spool").iterdir()) == [".lock", REJECTED_DIR]
    assert spool.depth().files == 0 and spool.depth().bytes == 0


# ---------------------------------------------------------------- flushing


def test_a_new_flusher_publishes_what_a_crashed_run_spooled_oldest_first(tmp_path: Path) -> None:
    crashed = open_spool(tmp_path / "spool")
    crashed.write([decision("e-1")])
    crashed.write([decision("e-2"), decision("e-3")])
    crashed.write([decision("e-4")])
    interrupted = tmp_path / "spool" / f"{TEMP_PREFIX}{spool_name(time.time_ns())}"
    interrupted.write_bytes(b'{"format": "zoomguard.webhook-sp')  # a write cut short by the crash
    crashed.close()  # the process died: its lock is gone, nothing was published

    with capture_logs() as logs:
        restarted = open_spool(tmp_path / "spool")
    assert (restarted.depth().files, restarted.depth().rejected) == (3, 1)
    assert [e["reason"] for e in logs if e["event"] == "spool file set aside"] == [
        "interrupted write (a temp file left by a previous run)"
    ]
    assert not interrupted.exists() and len(list((tmp_path / "spool" / REJECTED_DIR).iterdir())) == 1
    restarted.write([decision("e-5")])  # accepted after the restart: published after the leftovers
    broker = FakeBroker()

    assert flusher_for(restarted, broker).flush()

    assert broker.acked == ["e-1", "e-2", "e-3", "e-4", "e-5"]
    assert restarted.pending() == [] and restarted.depth().files == 0


def test_a_file_is_deleted_only_after_every_decision_in_it_was_acknowledged(tmp_path: Path) -> None:
    spool = open_spool(tmp_path / "spool")
    path = spool.write([decision("e-1"), decision("e-2")])
    seen: list[bool] = []
    broker = FakeBroker(fail_once={"e-2"}, on_publish=lambda _: seen.append(path.exists()))
    flusher = flusher_for(spool, broker)

    assert not flusher.flush()  # e-1 acknowledged, e-2 not

    assert path.exists() and spool.pending() == [path] and broker.acked == ["e-1"]
    assert broker.sinks[0].aborted and flusher.failures == 1 and "no ack for e-2" in (flusher.last_error or "")

    assert flusher.flush()  # a new sink; only what was not acknowledged is sent again

    assert broker.connects == 2 and broker.acked == ["e-1", "e-2"]
    assert seen == [True, True, True] and not path.exists() and spool.depth().files == 0
    assert flusher.failures == 0 and flusher.last_error is None and flusher.published == 2


def test_corrupt_files_are_set_aside_with_a_log_line_and_the_rest_is_published(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    directory.mkdir()
    whole = encode_batch([decision("e-1")], T0)
    not_ours = json.dumps({"format": "something else", "decisions": []}).encode()
    invalid = encode_batch([decision("e-1")], T0).replace(b'"e-1"', b'"has spaces"')
    broken = {spool_name(1): whole[: len(whole) // 2], spool_name(2): not_ours, spool_name(3): invalid}
    for name, data in broken.items():
        (directory / name).write_bytes(data)
    (directory / spool_name(4)).write_bytes(encode_batch([decision("e-ok")], T0))
    spool = open_spool(directory)
    broker = FakeBroker()

    with capture_logs() as logs:
        assert flusher_for(spool, broker).flush()

    assert broker.acked == ["e-ok"] and spool.pending() == []
    set_aside = [e for e in logs if e["event"] == "spool file set aside"]
    assert [e["file"] for e in set_aside] == list(broken)
    assert [e["reason"].split(" ")[0] for e in set_aside] == ["not", "not", "invalid"]
    kept = {p.name: p.read_bytes() for p in (directory / REJECTED_DIR).iterdir()}
    assert kept == broken  # moved aside byte for byte, not lost
    assert spool.depth().rejected == 3


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff_delay(n, 0.5, 30.0) for n in range(1, 10)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    assert backoff_delay(10_000, 0.5, 30.0) == 30.0


def test_the_flusher_thread_outlasts_an_outage_and_makes_a_new_producer(tmp_path: Path) -> None:
    spool = open_spool(tmp_path / "spool")
    broker = FakeBroker(down=2, fail_once={"e-1"})  # two failed connects, then a producer that loses e-1
    flusher = flusher_for(spool, broker).start()
    try:
        spool.write([decision("e-1")])
        flusher.wake()
        deadline = time.monotonic() + 10
        while spool.pending() and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        flusher.stop()
    assert broker.acked == ["e-1"] and spool.pending() == []
    assert broker.connects == 4 and [s.aborted for s in broker.sinks] == [True, False]
    assert broker.sinks[1].closed and not flusher.alive


# ---------------------------------------------------------------- the service (sockets, no broker)


def test_the_webhook_answers_before_the_broker_is_reachable(tmp_path: Path) -> None:
    settings = ReviewSettings(webhook_spool_dir=str(tmp_path / "spool"), webhook_flush_backoff_s=0.01)
    reachable = threading.Event()
    broker = FakeBroker()

    def connect() -> FakeSink:
        if not reachable.wait(30):
            raise UnavailableError("still down")
        return broker.connect()

    service = WebhookService(settings, connect, port=0).start()
    base = f"http://127.0.0.1:{service.port}"
    try:
        started = time.monotonic()
        reply = httpx.post(base + settings.webhook_path, content=CREATED, timeout=5)
        elapsed = time.monotonic() - started
        assert reply.status_code == 200 and reply.json()["status"] == "accepted", reply.text
        assert elapsed < 0.5  # Label Studio gives up after 1 s
        health = httpx.get(base + "/health", timeout=5).json()
        assert health["spool"]["files"] == 1 and health["flusher"]["running"] and broker.acked == []

        reachable.set()
        deadline = time.monotonic() + 10
        while spool_files(tmp_path / "spool") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert broker.acked == ["evt-hook-1"]
        assert httpx.get(base + "/health", timeout=5).json()["spool"]["files"] == 0
    finally:
        reachable.set()
        service.stop()


def spool_files(directory: Path) -> list[str]:
    return [p.name for p in directory.glob("*.json")]
