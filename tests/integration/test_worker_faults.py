"""Faults against the real broker and a real vLLM server: kills, takeovers, outages, graceful stops.

Workers run as real `zoomguard run` processes in server mode (fast to start) against the session's vLLM
server, so SIGKILL and SIGTERM hit a real process.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.kafka_helpers import (
    TopicWatcher,
    committed,
    image_event,
    inline,
    kafka_overrides,
    produce,
    read_json,
    wait_for,
)
from tests.support import LoopThread, TcpProxy, tiny_settings
from zoomguard.app.config import Settings
from zoomguard.app.worker_service import run_service
from zoomguard.kafka.embedded_broker import EmbeddedBroker
from zoomguard.samples import make_samples


def _events(count: int, seed: int) -> list[tuple[bytes | None, bytes]]:
    samples = make_samples(count, seed=seed, size=(160, 120))
    return [(f"ev-{seed}-{i}".encode(), image_event(f"ev-{seed}-{i}", inline(s.data))) for i, s in enumerate(samples)]


def _server_settings(tiny_model: Path, server_url: str, kafka: dict[str, Any], **worker: Any) -> Settings:
    return tiny_settings(
        str(tiny_model),
        {"mode": "server", "server_urls": [server_url], "served_model_name": "tiny", "request_timeout_s": 30},
        **kafka,
        worker={"commit_interval_s": 0.2, "drain_timeout_s": 20, "retry_initial_s": 0.2, "retry_max_s": 1.0, **worker},
    )


class WorkerProcess:
    """`zoomguard run` with a config file, logs to a file."""

    def __init__(self, settings: Settings, tmp_path: Path, name: str):
        self.config = tmp_path / f"{name}.json"
        self.config.write_text(settings.model_dump_json())
        self.log = tmp_path / f"{name}.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.log.open("wb") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "zoomguard.cli", "run", "--config", str(self.config), "--log-json"],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return out

    def terminate(self, timeout: float = 60) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=30)

    def stop_quietly(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


def _verdict_ids(bootstrap: str, topic: str) -> Counter[str]:
    return Counter(v["event_id"] for v in read_json(bootstrap, topic))


def test_sigkill_loses_nothing_and_commits_never_pass_unfinished_events(
    broker: EmbeddedBroker, tiny_model: Path, vllm_server: str, tmp_path: Path
) -> None:
    kafka = kafka_overrides(broker.bootstrap, "kill", partitions=3)
    topics, group = kafka["topics"], kafka["kafka"]["group_id"]
    records = _events(60, seed=1)
    metadata = produce(broker.bootstrap, topics["input"], records)
    offsets = {(m.partition, m.offset): key.decode() for (key, _), m in zip(records, metadata, strict=True)}
    settings = _server_settings(tiny_model, vllm_server, kafka, max_in_flight=2, low_water=0)

    first = WorkerProcess(settings, tmp_path, "first")
    watcher = TopicWatcher(broker.bootstrap, topics["verdicts"])
    try:
        wait_for(lambda: sum(watcher.event_ids().values()) >= 5, 120, "first verdicts", interval=0.05)
        first.kill()  # SIGKILL with events in flight
    finally:
        first.stop_quietly()
        watcher.close()

    # every offset below a committed point has its verdict already
    done = _verdict_ids(broker.bootstrap, topics["verdicts"])
    assert sum(done.values()) < len(records), "the kill came too late to test anything"
    for partition, point in committed(broker.bootstrap, group, topics["input"], 3).items():
        for offset in range(point or 0):
            assert offsets[(partition, offset)] in done, f"committed past unfinished {partition}/{offset}"

    second = WorkerProcess(settings, tmp_path, "second")
    try:
        wanted = {key.decode() for key, _ in records}
        wait_for(lambda: set(_verdict_ids(broker.bootstrap, topics["verdicts"])) == wanted, 180, "all verdicts")
        assert second.terminate() == 0  # SIGTERM: drain, commit, exit 0
    finally:
        second.stop_quietly()
    ends = Counter(m.partition for m in metadata)
    assert committed(broker.bootstrap, group, topics["input"], 3) == {p: ends[p] for p in range(3)}
    assert read_json(broker.bootstrap, topics["dead_letter"]) == []


def test_two_workers_share_partitions_and_one_takes_over(
    broker: EmbeddedBroker, tiny_model: Path, vllm_server: str, tmp_path: Path
) -> None:
    kafka = kafka_overrides(broker.bootstrap, "share", partitions=4)
    topics, group = kafka["topics"], kafka["kafka"]["group_id"]
    settings = _server_settings(tiny_model, vllm_server, kafka, max_in_flight=1, low_water=0)
    a = WorkerProcess(settings, tmp_path, "a")
    b = WorkerProcess(settings, tmp_path, "b")
    try:

        def assigned(worker: WorkerProcess) -> list[str]:
            found = [line["partitions"] for line in worker.lines() if line.get("event") == "partitions assigned"]
            return found[-1] if found else []

        wait_for(lambda: bool(assigned(a)) and bool(assigned(b)), 60, "both workers to get partitions")
        assert not set(assigned(a)) & set(assigned(b))
        records = _events(60, seed=2)
        records.append((b"ev-bad", image_event("ev-bad", inline(b"not an image"))))
        metadata = produce(broker.bootstrap, topics["input"], records)
        watcher = TopicWatcher(broker.bootstrap, topics["verdicts"])
        try:
            wait_for(lambda: sum(watcher.event_ids().values()) >= 4, 120, "some verdicts", interval=0.05)
            assert a.terminate() == 0  # a leaves; b takes over its partitions
            assert sum(watcher.event_ids().values()) < len(records), "a finished before leaving: nothing to take over"
        finally:
            watcher.close()
        every_partition = sorted(f"{topics['input']}/{p}" for p in range(4))
        wait_for(lambda: sorted(assigned(b)) == every_partition, 60, "b to take over every partition")
        wanted = {key.decode() for key, _ in records} - {"ev-bad"}
        wait_for(lambda: set(_verdict_ids(broker.bootstrap, topics["verdicts"])) == wanted, 180, "all verdicts")
        assert b.terminate() == 0
    finally:
        a.stop_quietly()
        b.stop_quietly()
    handled = {w: next(line["handled"] for line in w.lines() if line.get("event") == "exiting") for w in (a, b)}
    assert handled[a] > 0 and handled[b] > 0
    # log lines about an event say which event, where it came from, and which trace it belongs to
    (letter,) = [line for w in (a, b) for line in w.lines() if line.get("event") == "dead letter"]
    assert letter["event_id"] == "ev-bad" and letter["topic"] == topics["input"]
    assert {"partition", "offset", "trace_id", "model_version", "timestamp", "level"} <= set(letter)
    ends = Counter(m.partition for m in metadata)
    assert committed(broker.bootstrap, group, topics["input"], 4) == {p: ends[p] for p in range(4)}


def test_engine_outage_commits_nothing_dead_letters_nothing_then_recovers(
    loop: LoopThread, broker: EmbeddedBroker, tiny_model: Path, vllm_server: str
) -> None:
    host, port = vllm_server.removeprefix("http://").split(":")
    proxy = TcpProxy(host, int(port))  # not started: the engine is down
    kafka = kafka_overrides(broker.bootstrap, "outage", partitions=2)
    topics, group = kafka["topics"], kafka["kafka"]["group_id"]
    settings = _server_settings(tiny_model, proxy.url, kafka)
    records = _events(4, seed=3)
    metadata = produce(broker.bootstrap, topics["input"], records)

    stop_holder: dict[str, Any] = {}

    async def start() -> None:
        stop = asyncio.Event()
        stop_holder["stop"] = stop
        stop_holder["task"] = asyncio.create_task(run_service(settings, stop))

    async def finish() -> Any:
        stop_holder["stop"].set()
        return await stop_holder["task"]

    loop.run(start())
    try:
        time.sleep(8)  # events are polled and retried against the dead engine
        assert read_json(broker.bootstrap, topics["verdicts"]) == []
        assert read_json(broker.bootstrap, topics["dead_letter"]) == []
        # nothing committed past the first (unfinished) offset of any partition
        assert all(point in (None, 0) for point in committed(broker.bootstrap, group, topics["input"], 2).values())
        proxy.start()  # the engine comes back
        wanted = {key.decode() for key, _ in records}
        wait_for(lambda: set(_verdict_ids(broker.bootstrap, topics["verdicts"])) == wanted, 120, "recovery")
    finally:
        stats = loop.run(finish())
        proxy.stop()
    assert stats.outcomes == Counter({"verdict": 4})
    assert read_json(broker.bootstrap, topics["dead_letter"]) == []
    ends = Counter(m.partition for m in metadata)
    assert committed(broker.bootstrap, group, topics["input"], 2) == {p: (ends[p] or None) for p in range(2)}
