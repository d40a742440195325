"""Profiling aid: what per-token logprobs cost the engine ceiling (tiny model, in-process vLLM on CPU).

Runs the engine-ceiling measurement several times in one process, changing only how logprobs are
requested (one pass scoring every token, or the default two steps that score only the verdict), so the
ratios are side by side on the same engine:

    .venv/bin/python benchmarks/logprob_cost.py [IMAGES]

This is how the bottleneck recorded in RESULTS.md was found: the verdict's probability is read from one
token, but vLLM reports logprobs for every generated token, and on a tiny model the CPU spent turning
them into Python objects outweighs the model itself.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

# (two_phase, SamplingParams overrides for the requests that ask for logprobs)
VARIANTS: dict[str, tuple[bool, dict[str, Any]]] = {
    "one pass, dict logprobs, top 10": (False, {"flat_logprobs": False, "logprobs": 10}),
    "one pass, flat logprobs, top 5": (False, {"flat_logprobs": True, "logprobs": 5}),
    "two steps, flat, top 5 (default)": (True, {}),
    "one pass, no logprobs (no p_ai)": (False, {"logprobs": None}),
}


async def main(images: int) -> None:
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    import vllm

    import zoomguard.detector.zoomin as zoomin
    from zoomguard.bench.runs import engine_ceiling
    from zoomguard.commands.bench import _TINY_DETECTOR, _TINY_ENGINE
    from zoomguard.config import load_settings
    from zoomguard.detector.factory import build_engine
    from zoomguard.detector.tiny_model import build_tiny_model
    from zoomguard.samples import make_samples

    original = vllm.SamplingParams
    marker = zoomin.VERDICT_MARKER
    variant: dict[str, Any] = {}

    def sampling_params(**kwargs: Any) -> Any:
        return original(**{**kwargs, **(variant if kwargs.get("logprobs") else {})})

    vllm.SamplingParams = sampling_params  # type: ignore[assignment,misc]
    model = Path("bench-out/tiny-model")
    if not (model / "config.json").is_file():
        build_tiny_model(model)
    settings = load_settings(
        environ={}, overrides={"engine": {"model": str(model), **_TINY_ENGINE}, "detector": _TINY_DETECTOR}
    )
    engine = build_engine(settings)
    await engine.start()
    data = [s.data for s in make_samples(images, seed=1000, size=(320, 240))]
    try:
        await engine_ceiling(settings, engine, data[:8])  # warm-up
        for name, (two_steps, change) in VARIANTS.items():
            zoomin.VERDICT_MARKER = marker if two_steps else None  # type: ignore[assignment]
            variant.clear()
            variant.update(change)
            result = await engine_ceiling(settings, engine, data)
            print(f"{name:<32} {result.ips:6.1f} images/s", flush=True)
    finally:
        await engine.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 64))
