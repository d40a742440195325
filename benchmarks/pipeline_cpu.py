"""Profiling aid: where the pipeline's CPU goes against the ceiling's, per process and per thread, with the time
Python's garbage collector stopped the process (tiny model, in-process vLLM on CPU, the embedded broker):

    .venv/bin/python benchmarks/pipeline_cpu.py [ROUNDS]

Each round runs the ceiling and then the pipeline on 128 fresh images at the bench's workload (1.95 regions per
image), as `zoomguard bench --quick` does, and prints for each: images/s, the cores kept busy over its wall
time, CPU ms per image of every process (this one, vLLM's engine core and model worker, the broker), of every
thread of this process (threads that end during the run are counted up to their last sample, every 0.25 s),
and the garbage collector's pauses (all generations, and the full collections alone).

Why: on a machine whose cores the engine keeps busy, every millisecond the worker spends per image comes out of
the engine's; this says which part of the worker spends it. RESULTS.md records what it found.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import threading
import time
from typing import Any

os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")

import psutil

_IMAGES = 128


class GcPauses:
    """Wall time inside the collector, from gc.callbacks."""

    def __init__(self) -> None:
        self.total_s = self.full_s = 0.0
        self.full = 0
        self._started = 0.0
        gc.callbacks.append(self._on)

    def _on(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        spent = time.perf_counter() - self._started
        self.total_s += spent
        if info["generation"] == 2:
            self.full += 1
            self.full_s += spent

    def take(self) -> str:
        text = f"gc pauses {self.total_s:.2f} s, {self.full} full collections {self.full_s:.2f} s"
        self.total_s = self.full_s = 0.0
        self.full = 0
        return text


def _processes() -> dict[tuple[int, str], float]:
    """The bench's own per-process CPU reading, keyed with a readable name."""
    from zoomguard.bench.runs import process_tree_cpu_seconds

    return {(pid, _name(pid)): spent for pid, spent in process_tree_cpu_seconds().items()}


def _name(pid: int) -> str:
    if pid == os.getpid():
        return "worker process"
    try:
        return psutil.Process(pid).name().removeprefix("VLLM::")
    except psutil.Error:  # gone meanwhile
        return "other"


def _threads() -> dict[tuple[int, str], float]:
    names = {t.native_id: t.name for t in threading.enumerate()}
    return {(t.id, names.get(t.id, "native")): t.user_time + t.system_time for t in psutil.Process().threads()}


def _per_image(before: dict[tuple[int, str], float], after: dict[tuple[int, str], float]) -> str:
    by_name: dict[str, float] = {}
    for key, spent in after.items():
        name = key[1].rstrip("0123456789_-")
        by_name[name] = by_name.get(name, 0.0) + spent - before.get(key, 0.0)
    ranked = sorted(by_name.items(), key=lambda item: -item[1])
    return ", ".join(f"{name} {1000 * spent / _IMAGES:.1f}" for name, spent in ranked if spent >= 0.02)


async def main(rounds: int) -> None:
    import zoomguard.commands.bench as command
    from zoomguard.bench.images import FreshImages
    from zoomguard.bench.runs import engine_ceiling, pipeline
    from zoomguard.bench.workload import WorkloadEngine
    from zoomguard.detector.factory import build_engine
    from zoomguard.detector.families import resolve_family
    from zoomguard.kafka.embedded_broker import EmbeddedBroker

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    options = command.options_from_args(parser.parse_args(["--quick", "--out", "bench-out/report.json"]))
    assert options.regions_per_image is not None
    fresh = FreshImages(options.image_size, first_seed=3_000_000)
    pauses = GcPauses()
    with EmbeddedBroker() as broker:
        settings = command.bench_settings(options, broker.bootstrap)
        engine = build_engine(settings.engine, settings.detector)
        await engine.start()
        try:
            family = resolve_family(settings.engine.model, settings.detector.model_family)
            served = WorkloadEngine(engine, options.regions_per_image, family)
            await engine_ceiling(settings, served, fresh.take(16))  # warm-up
            await pipeline(settings, served, fresh.take(16), max_in_flight=options.max_in_flight)
            pauses.take()
            for index in range(rounds):
                for stage in ("ceiling", "pipeline"):
                    images = fresh.take(_IMAGES)
                    processes, threads = _processes(), _threads()
                    seen, halt = dict(threads), threading.Event()

                    def watch(seen: dict[tuple[int, str], float] = seen, halt: threading.Event = halt) -> None:
                        while not halt.wait(0.25):
                            seen.update(_threads())

                    watcher = threading.Thread(target=watch, daemon=True)
                    watcher.start()
                    started = time.perf_counter()
                    if stage == "ceiling":
                        result = await engine_ceiling(settings, served, images)
                    else:
                        result = await pipeline(settings, served, images, max_in_flight=options.max_in_flight)
                    wall = time.perf_counter() - started
                    after = _processes()
                    halt.set()
                    watcher.join()
                    seen.update(_threads())
                    busy = sum(after[k] - processes.get(k, 0.0) for k in after) / wall
                    head = f"round {index + 1} {stage}: {result.ips:.2f} images/s, {busy:.2f} cores busy"
                    print(f"{head}, {pauses.take()}")
                    print(f"  CPU ms per image by process: {_per_image(processes, after)}")
                    print(f"  by thread of the worker process: {_per_image(threads, seen)}", flush=True)
        finally:
            await engine.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rounds", type=int, nargs="?", default=3)
    asyncio.run(main(parser.parse_args().rounds))
