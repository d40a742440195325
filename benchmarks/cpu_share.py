"""Profiling aid: where the CPU goes during the engine ceiling, per process, and what a second engine adds
(tiny model, in-process vLLM on CPU):

    .venv/bin/python benchmarks/cpu_share.py [IMAGES] [ROUNDS] [--engines N]

One engine runs the ceiling ROUNDS times on fresh images. Each round reports images/s, the cores kept busy
(CPU time over wall time, all processes) and the CPU time per image of each process: the front end (the
detector, vLLM's input and output processing), vLLM's engine core (scheduler, grammar) and its model worker.
Time spent spinning while one process waits for the other counts as busy.

With `--engines N` (N > 1) it then starts N engines in N processes at once, the model worker of engine i
bound to core i (`VLLM_CPU_OMP_THREADS_BIND`), and reports the sum of their images/s, round by round, next
to the single engine's.

Why: on a small machine the question is whether the engine leaves CPU unused, so that more concurrency or a
second engine would help, or spends it all, so that only less CPU per image helps. RESULTS.md records the
answer for the development machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_RESULT = "RESULT "


async def rounds(images: int, count: int, seed: int, barrier: Path | None, engines: int) -> None:
    """Run in a child process: print one RESULT line per round."""
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    from zoomguard.app.config import load_settings
    from zoomguard.bench.runs import engine_ceiling, process_tree_cpu_seconds
    from zoomguard.commands.bench import _TINY_DETECTOR, _TINY_ENGINE
    from zoomguard.detector.factory import build_engine
    from zoomguard.samples import make_samples

    model = os.environ["ZOOMGUARD_BENCH_MODEL"]
    settings = load_settings(
        environ={}, overrides={"engine": {"model": model, **_TINY_ENGINE}, "detector": _TINY_DETECTOR}
    )
    engine = build_engine(settings.engine, settings.detector)
    await engine.start()
    try:
        await engine_ceiling(settings, engine, [s.data for s in make_samples(8, seed=seed - 1, size=(320, 240))])
        if barrier is not None:  # every engine is up: start the rounds together
            (barrier / str(os.getpid())).touch()
            while len(list(barrier.iterdir())) < engines:
                await asyncio.sleep(0.05)
        for index in range(count):
            batch = [s.data for s in make_samples(images, seed=seed + 100 * index, size=(320, 240))]
            before = process_tree_cpu_seconds()
            started = time.perf_counter()
            result = await engine_ceiling(settings, engine, batch)
            wall = time.perf_counter() - started
            after = process_tree_cpu_seconds()
            seconds: dict[str, float] = {}
            for pid, spent in after.items():
                name = "front end" if pid == os.getpid() else _name(pid)
                seconds[name] = seconds.get(name, 0.0) + spent - before.get(pid, 0.0)
            print(_RESULT + json.dumps({"ips": result.ips, "wall": wall, "images": images, "cpu": seconds}), flush=True)
    finally:
        await engine.close()


def _name(pid: int) -> str:
    import psutil

    try:
        return psutil.Process(pid).name().removeprefix("VLLM::")
    except psutil.Error:  # a helper process that has gone
        return "other"


def _spawn(
    images: int, count: int, seed: int, *, bind: str | None = None, barrier: str = "", engines: int = 1
) -> subprocess.Popen[str]:
    env = dict(os.environ)
    if bind is not None:
        env["VLLM_CPU_OMP_THREADS_BIND"] = bind
    command = [sys.executable, __file__, str(images), str(count), "--child-seed", str(seed)]
    if barrier:
        command += ["--child-barrier", barrier, "--engines", str(engines)]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)


def _results(process: subprocess.Popen[str]) -> list[dict[str, Any]]:
    out, _ = process.communicate()
    if process.returncode:
        raise SystemExit(f"an engine process failed (exit {process.returncode})")
    return [json.loads(line[len(_RESULT) :]) for line in out.splitlines() if line.startswith(_RESULT)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", type=int, nargs="?", default=128)
    parser.add_argument("rounds", type=int, nargs="?", default=3)
    parser.add_argument("--engines", type=int, default=1)
    parser.add_argument("--child-seed", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-barrier", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_seed is not None:
        barrier = Path(args.child_barrier) if args.child_barrier else None
        asyncio.run(rounds(args.images, args.rounds, args.child_seed, barrier, args.engines))
        return

    model = Path(os.environ.setdefault("ZOOMGUARD_BENCH_MODEL", "bench-out/tiny-model"))
    if not (model / "config.json").is_file():
        from zoomguard.detector.tiny_model import build_tiny_model

        build_tiny_model(model)
    single = _results(_spawn(args.images, args.rounds, seed=2000))
    print(f"one engine, {args.images} images per round at once:")
    for index, result in enumerate(single):
        used = {name: spent for name, spent in result["cpu"].items() if spent >= 0.005}
        per_image = ", ".join(f"{name} {1000 * spent / result['images']:.1f}" for name, spent in used.items())
        busy = sum(used.values()) / result["wall"]
        print(f"  round {index + 1}: {result['ips']:.1f} images/s, {busy:.2f} cores busy; CPU ms/image: {per_image}")
    if args.engines < 2:
        return
    with tempfile.TemporaryDirectory() as start_line:
        children = [
            _spawn(args.images, args.rounds, seed=5000 + 1000 * i, bind=str(i % (os.cpu_count() or 1)),
                   barrier=start_line, engines=args.engines)
            for i in range(args.engines)
        ]  # fmt: skip
        together = [_results(child) for child in children]
    sums = [sum(r[i]["ips"] for r in together) for i in range(args.rounds)]
    one = statistics.median(r["ips"] for r in single)
    print(f"{args.engines} engines at once, one core each for their model workers:")
    for index, total in enumerate(sums):
        print(f"  round {index + 1}: {total:.1f} images/s in all")
    both = statistics.median(sums)
    print(f"median: {both:.1f} images/s against {one:.1f} for one engine ({both / one:.2f}x)")


if __name__ == "__main__":
    main()
