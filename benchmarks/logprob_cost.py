"""Profiling aid: what reading the verdict's probability costs the engine ceiling (tiny model, in-process
vLLM on CPU), variant by variant, side by side on one engine:

    .venv/bin/python benchmarks/logprob_cost.py [IMAGES] [ROUNDS]

Each variant changes only how the verdict is scored. Every (variant, round) gets images of its own, so no
variant is served Query 1 from the prefix cache that an earlier one filled, and the order of the variants
rotates between rounds, so drift on a shared machine falls on all of them alike. The table reports the
median images/s per variant and its ratio to the shipped default.

This is how the bottlenecks recorded in RESULTS.md were found: the verdict's probability is read from one
token, but vLLM reports logprobs for every generated token, and when it detokenizes, its front end decodes
every token and every alternative as they arrive, which on a tiny model costs more CPU than the model.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
from pathlib import Path
from typing import Any

# name -> SamplingParams overrides for every request
VARIANTS: dict[str, dict[str, Any]] = {
    "token ids only, final output only (default)": {},
    "an output object per step (vLLM's default)": {"output_kind": "CUMULATIVE"},
    "vLLM detokenizes every token and alternative": {"detokenize": True},
    "no logprobs (no p_ai: the floor)": {"logprobs": None},
}


async def main(images: int, rounds: int) -> None:
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    import vllm
    from vllm.sampling_params import RequestOutputKind

    from zoomguard.app.config import load_settings
    from zoomguard.bench.runs import engine_ceiling
    from zoomguard.commands.bench import _TINY_DETECTOR, _TINY_ENGINE
    from zoomguard.detector.factory import build_engine
    from zoomguard.detector.tiny_model import build_tiny_model
    from zoomguard.samples import make_samples

    original_params = vllm.SamplingParams
    variant: dict[str, Any] = {}

    def sampling_params(**kwargs: Any) -> Any:
        change = {k: (RequestOutputKind[v] if k == "output_kind" else v) for k, v in variant.items()}
        return original_params(**{**kwargs, **change})

    vllm.SamplingParams = sampling_params  # type: ignore[assignment,misc]
    model = Path(os.environ.get("ZOOMGUARD_BENCH_MODEL", "bench-out/tiny-model"))
    if not (model / "config.json").is_file():
        build_tiny_model(model)
    settings = load_settings(
        environ={}, overrides={"engine": {"model": str(model), **_TINY_ENGINE}, "detector": _TINY_DETECTOR}
    )
    engine = build_engine(settings.engine, settings.detector)
    await engine.start()
    names = list(VARIANTS)
    results: dict[str, list[float]] = {name: [] for name in names}
    token_rates: dict[str, list[float]] = {name: [] for name in names}
    seed = 5000
    try:
        warm = [s.data for s in make_samples(8, seed=seed, size=(320, 240))]
        await engine_ceiling(settings, engine, warm)
        for round_index in range(rounds):
            order = names[round_index % len(names) :] + names[: round_index % len(names)]
            for name in order:
                seed += 1000
                data = [s.data for s in make_samples(images, seed=seed, size=(320, 240))]
                variant.clear()
                variant.update(VARIANTS[name])
                result = await engine_ceiling(settings, engine, data)
                results[name].append(result.ips)
                tokens = sum(
                    d.usage.locate_completion_tokens + d.usage.examine_completion_tokens for d in result.detections
                )
                token_rates[name].append(rate := tokens / result.seconds)
                print(
                    f"round {round_index + 1}: {name:<34} {result.ips:6.1f} images/s {rate:7.0f} tokens/s",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        await engine.close()
    baseline = statistics.median(results[names[0]])
    print(f"\n| variant | images/s | vs default | generated tokens/s | rounds ({images} images each) |")
    print("|---|---|---|---|---|")
    for name in names:
        median = statistics.median(results[name])
        runs = ", ".join(f"{v:.1f}" for v in results[name])
        print(
            f"| {name} | {median:.1f} | {median / baseline:.2f} | {statistics.median(token_rates[name]):.0f} | {runs} |"
        )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 64, int(sys.argv[2]) if len(sys.argv) > 2 else 3))
