"""The way published detectors run (FakeVLM, LEGION, SIDA): one image at a time through transformers'
`generate`, both queries, on the same model and images, generating as many tokens as vLLM did."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from PIL import Image

from zoomguard.bench.runs import RunResult, throughput
from zoomguard.detector.crops import CropSettings, cut_crops, plan_crops
from zoomguard.detector.families import FAMILIES
from zoomguard.detector.geometry import Box
from zoomguard.detector.images import decode_image
from zoomguard.detector.prompts import examine_prompt, locate_prompt


def naive_transformers(
    model_dir: str,
    images: Sequence[bytes],
    *,
    locate_tokens: int,
    examine_tokens: int,
    max_pixels: int,
    min_pixels: int = 56 * 56,
) -> RunResult:
    import torch
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    processor = AutoProcessor.from_pretrained(model_dir)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32).eval()
    family = FAMILIES["qwen2_5_vl"]
    completions: list[float] = []
    started = time.perf_counter()
    for data in images:
        decoded = decode_image(data)
        size = family.model_size(decoded.width, decoded.height, min_pixels, max_pixels)
        model_image = decoded.image.resize(size, Image.Resampling.BICUBIC)
        first: list[dict[str, Any]] = [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": _locate(family, size)}]}
        ]
        answer = _generate(processor, model, first, [model_image], locate_tokens)
        # the same crops the pipeline would cut for a typical answer: two regions
        w, h = decoded.width, decoded.height
        boxes = [Box(w * 0.1, h * 0.1, w * 0.4, h * 0.4), Box(w * 0.5, h * 0.5, w * 0.8, h * 0.9)]
        crops = [
            crop.resize(family.model_size(*crop.size, min_pixels, max_pixels))
            for crop in cut_crops(decoded.image, plan_crops(boxes, w, h, CropSettings(max_crops=2)))
        ]
        second: list[dict[str, Any]] = [
            *first,
            {"role": "assistant", "content": answer},
            {
                "role": "user",
                "content": [*({"type": "image"} for _ in crops), {"type": "text", "text": examine_prompt(["a", "b"])}],
            },
        ]
        _generate(processor, model, second, [model_image, *crops], examine_tokens)
        completions.append(time.perf_counter())
    ips, span = throughput(started, completions)
    return RunResult(len(images), span, ips)


def _locate(family: object, size: tuple[int, int]) -> str:
    return locate_prompt(FAMILIES["qwen2_5_vl"].coordinate_instruction(size), 4)


def _generate(
    processor: object, model: object, messages: list[dict[str, object]], images: list[Image.Image], tokens: int
) -> str:
    import torch

    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)  # type: ignore[attr-defined]
    inputs = processor(text=[text], images=images, return_tensors="pt")  # type: ignore[operator]
    with torch.inference_mode():
        output = model.generate(  # type: ignore[attr-defined]
            **inputs, max_new_tokens=max(1, tokens), min_new_tokens=max(1, tokens), do_sample=False
        )
    new_tokens = output[0, inputs["input_ids"].shape[1] :]
    return str(processor.batch_decode([new_tokens], skip_special_tokens=True)[0])  # type: ignore[attr-defined]
