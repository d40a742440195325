"""The way published detectors run (FakeVLM, LEGION, SIDA): one image at a time through transformers'
`generate`, both queries, on the same model and images.

The baseline replays what the engine did for each image: the same regions and therefore the same crops in
Query 2, Query 2 only where it ran, and as many generated tokens per query, so the two sides do the same
work and differ only in how it is run.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image

from zoomguard.bench.gpu_model import is_dummy_model, random_transformers_model
from zoomguard.bench.runs import RunResult, throughput
from zoomguard.detector.crops import cut_crops, plan_crops
from zoomguard.detector.families import FAMILIES
from zoomguard.detector.geometry import Box
from zoomguard.detector.prompts import examine_prompt, locate_prompt
from zoomguard.detector.settings import CropSettings
from zoomguard.media.images import decode_image
from zoomguard.schemas.detection import Detection

_IMAGE = {"type": "image"}


@dataclass(frozen=True)
class Replay:
    """What the engine did for one image."""

    locate_tokens: int
    examine_tokens: int  # 0 when Query 2 did not run
    regions: tuple[tuple[Box, str], ...]

    @classmethod
    def of(cls, detection: Detection) -> Replay:
        usage = detection.usage
        return cls(
            locate_tokens=usage.locate_completion_tokens,
            examine_tokens=usage.examine_completion_tokens if detection.examined else 0,
            regions=tuple((Box(*region.box), region.finding) for region in detection.regions),
        )


def naive_device(engine_dtype: str) -> tuple[str, str]:
    """The device and dtype the engine runs on, for the baseline to run on the same: CUDA when torch sees a GPU
    (vLLM then runs there), else the CPU; the engine's dtype, where 'auto' means the checkpoint's own."""
    import torch

    return ("cuda" if torch.cuda.is_available() else "cpu"), engine_dtype


@dataclass
class NaiveModel:
    """The checkpoint loaded once in transformers, on the engine's device and dtype, with torch's default threads
    (what a single-process user gets: one per physical core), so every repeat measures generation alone.

    The threads are the baseline's only while it runs (`own_threads`): vLLM sets the serving process to one torch
    thread on purpose (several spin against the engine's own), and a bench that left two behind would slow every
    later stage's image processing, the ceiling's and the pipeline's alike."""

    model_dir: str
    device: str = "cpu"
    dtype: str = "float32"
    threads: int = 0
    _loaded: tuple[Any, Any] | None = None

    @contextlib.contextmanager
    def own_threads(self) -> Iterator[None]:
        """torch's default threads (one per physical core) inside, the process's own count restored after."""
        import psutil
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(psutil.cpu_count(logical=False) or 1)
        self.threads = torch.get_num_threads()
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def load(self) -> tuple[Any, Any]:
        if self._loaded is None:
            import torch
            from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

            dtype = "auto" if self.dtype == "auto" else getattr(torch, self.dtype)
            processor = AutoProcessor.from_pretrained(self.model_dir)
            if is_dummy_model(self.model_dir):  # a config without weights (load_format=dummy): random ones here too
                random_dtype = "bfloat16" if self.dtype == "auto" else self.dtype
                model = random_transformers_model(self.model_dir, dtype=random_dtype, device=self.device)
            else:
                model = Qwen2_5_VLForConditionalGeneration.from_pretrained(self.model_dir, dtype=dtype)
            self._loaded = (processor, model.to(self.device).eval())
        return self._loaded


def naive_transformers(
    naive: NaiveModel,
    images: Sequence[bytes],
    replays: Sequence[Replay],
    *,
    crops: CropSettings,
    max_regions: int,
    max_pixels: int,
    min_pixels: int = 56 * 56,
) -> RunResult:
    with naive.own_threads():
        processor, model = naive.load()
        family = FAMILIES["qwen2_5_vl"]
        completions: list[float] = []
        started = time.perf_counter()
        for data, replay in zip(images, replays, strict=True):
            decoded = decode_image(data)
            size = family.model_size(decoded.width, decoded.height, min_pixels, max_pixels)
            model_image = decoded.image.resize(size, Image.Resampling.BICUBIC)
            prompt = locate_prompt(family.coordinate_instruction(size), max_regions)
            first: list[dict[str, Any]] = [{"role": "user", "content": [_IMAGE, {"type": "text", "text": prompt}]}]
            answer = _generate(processor, model, first, [model_image], replay.locate_tokens)
            if replay.examine_tokens:
                boxes = [box for box, _ in replay.regions]
                plans = plan_crops(boxes, decoded.width, decoded.height, crops)
                zoomed = [
                    crop.resize(family.model_size(*crop.size, min_pixels, max_pixels))
                    for crop in cut_crops(decoded.image, plans)
                ]
                findings = [replay.regions[plan.region_index][1] for plan in plans]
                second: list[dict[str, Any]] = [
                    *first,
                    {"role": "assistant", "content": answer},
                    {
                        "role": "user",
                        "content": [*(_IMAGE for _ in zoomed), {"type": "text", "text": examine_prompt(findings)}],
                    },
                ]
                _generate(processor, model, second, [model_image, *zoomed], replay.examine_tokens)
            completions.append(time.perf_counter())
        ips, span = throughput(started, completions)
        return RunResult(len(images), span, ips)


def _generate(
    processor: object, model: object, messages: list[dict[str, object]], images: list[Image.Image], tokens: int
) -> str:
    import torch

    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)  # type: ignore[attr-defined]
    inputs = processor(text=[text], images=images, return_tensors="pt").to(model.device)  # type: ignore[operator, attr-defined]
    with torch.inference_mode():
        output = model.generate(  # type: ignore[attr-defined]
            **inputs, max_new_tokens=max(1, tokens), min_new_tokens=max(1, tokens), do_sample=False
        )
    if output.device.type == "cuda":
        torch.cuda.synchronize()
    new_tokens = output[0, inputs["input_ids"].shape[1] :]
    return str(processor.batch_decode([new_tokens], skip_special_tokens=True)[0])  # type: ignore[attr-defined]
