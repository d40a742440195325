"""ZoomIn on the real vLLM CPU engine (in-process) with the tiny model: a batch of generated images."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import pytest

from tests.support import LoopThread, RecordingEngine
from zoomguard.detector.confidence import p_ai_from_logprobs
from zoomguard.detector.engines.base import GenerationRequest, TokenLogprob
from zoomguard.detector.zoomin import ZoomInDetector
from zoomguard.samples import make_samples
from zoomguard.schemas.detection import Detection


def _detect_batch(loop: LoopThread, detector: ZoomInDetector, datas: list[bytes]) -> list[Detection]:
    async def run() -> list[Detection]:
        return list(
            await asyncio.gather(*(detector.detect_bytes(d, request_id=f"batch-{i}") for i, d in enumerate(datas)))
        )

    return loop.run(run())


def test_batch_of_generated_images(loop: LoopThread, inprocess_detector: ZoomInDetector) -> None:
    samples = make_samples(8, seed=100, size=(320, 240))
    detections = _detect_batch(loop, inprocess_detector, [s.data for s in samples])
    assert len(detections) == len(samples)
    for sample, detection in zip(samples, detections, strict=True):
        assert detection.image.sha256 == hashlib.sha256(sample.data).hexdigest()
        assert (detection.image.width, detection.image.height) == (320, 240)
        assert detection.decision in ("ai_generated", "real", "uncertain")
        if detection.p_ai is not None:
            assert 0.0 <= detection.p_ai <= 1.0
        if detection.decision == "uncertain":
            assert detection.reason is not None
        for region in detection.regions:
            x1, y1, x2, y2 = region.box
            assert 0 <= x1 < x2 <= 320 and 0 <= y1 < y2 <= 240
            assert all(0.0 <= v <= 1.0 for v in region.box_norm)
        assert detection.model.family == "qwen2_5_vl"
        assert detection.usage.locate_prompt_tokens > 0
        assert detection.timings_ms.total_ms >= detection.timings_ms.locate_ms > 0


def test_examine_reuses_the_locate_prefix(loop: LoopThread, inprocess_detector: ZoomInDetector) -> None:
    """Query 2 is Query 1's conversation continued: the prefix cache must serve Query 1's prompt."""
    sample = make_samples(1, seed=7, size=(448, 336))[0]
    detection = _detect_batch(loop, inprocess_detector, [sample.data])[0]
    assert detection.examined
    cached = detection.usage.examine_cached_tokens
    assert cached is not None
    # full KV blocks of Query 1's prompt are reused (vLLM caches whole blocks only)
    assert cached >= 0.8 * detection.usage.locate_prompt_tokens


def test_examine_continues_the_generated_answer_token_for_token(
    loop: LoopThread, inprocess_detector: ZoomInDetector, inprocess_engine: Any
) -> None:
    """Query 2's prompt carries Query 1's answer as the ids the model generated, not the text tokenized again,
    so the prefix cache serves the answer too: every full block of Query 1's prompt and answer."""
    block = inprocess_engine.prefix_block_size
    samples = make_samples(4, seed=31, size=(320, 240))
    examined = [d for d in _detect_batch(loop, inprocess_detector, [s.data for s in samples]) if d.examined]
    assert examined
    for detection in examined:
        usage = detection.usage
        computed = usage.locate_prompt_tokens + usage.locate_completion_tokens - 1  # the last token is never fed
        assert usage.examine_cached_tokens == computed // block * block


def test_the_same_image_gives_the_same_answer(loop: LoopThread, inprocess_detector: ZoomInDetector) -> None:
    data = make_samples(1, seed=3)[0].data
    first, second = _detect_batch(loop, inprocess_detector, [data, data])
    assert first.decision == second.decision
    assert first.p_ai == second.p_ai
    assert first.regions == second.regions


def test_crops_reach_the_engine(loop: LoopThread, tiny_model, inprocess_engine) -> None:  # type: ignore[no-untyped-def]
    """With at least one region required, Query 2 gets zoomed crops as extra images in the real engine."""
    from tests.support import tiny_settings
    from zoomguard.detector.factory import build_detector

    forced = tiny_settings(str(tiny_model), detector={"min_regions": 1})
    detector = build_detector(forced.engine, forced.detector, inprocess_engine)
    samples = make_samples(8, seed=500, size=(640, 480))
    detections = _detect_batch(loop, detector, [s.data for s in samples])
    assert all(len(d.regions) <= forced.detector.max_regions for d in detections)
    with_crops = [d for d in detections if d.crops]
    assert with_crops, "no detection produced a usable region from 8 images"
    for detection in with_crops:
        assert detection.crops <= forced.detector.crops.max_crops
        # each crop adds its image tokens to Query 2's prompt
        assert detection.usage.examine_prompt_tokens > detection.usage.locate_prompt_tokens + 16 * detection.crops


def _vllm_detokenized(loop: LoopThread, engine: Any, request: GenerationRequest) -> tuple[str, float | None]:
    """The answer and P(ai) with vLLM decoding every token and alternative itself (the slow way).

    It drives the engine's own private steps on purpose (its sampling parameters, prompt and raw run), so the
    only difference from the served path is who decodes the tokens: no public hook exposes those steps."""
    from vllm import SamplingParams

    params = engine._params(request)
    params = SamplingParams(
        temperature=params.temperature,
        max_tokens=params.max_tokens,
        logprobs=params.logprobs,
        flat_logprobs=True,
        structured_outputs=params.structured_outputs,
    )
    prompt = engine._prompt(request.turns)
    images = [image for turn in request.turns for image in turn.images]

    completion = loop.run(engine._run(f"{request.request_id}:reference", prompt, images, params)).outputs[0]
    flat = completion.logprobs
    tokens = []
    for position, token_id in enumerate(completion.token_ids):
        first, end = flat.start_indices[position], flat.end_indices[position]
        chosen = next(i for i in range(first, end) if flat.token_ids[i] == token_id)
        top = tuple((flat.decoded_tokens[i] or "", flat.logprobs[i]) for i in range(first, end))
        tokens.append(TokenLogprob(flat.decoded_tokens[chosen] or "", flat.logprobs[chosen], top))
    return completion.text, p_ai_from_logprobs(tokens)


def test_answers_decoded_once_match_vllm_detokenizing(
    loop: LoopThread, tiny_model: Path, inprocess_engine: Any
) -> None:
    """The engine asks vLLM for token ids only and decodes the answer once (token_texts); the text and
    P(ai) must be what vLLM's own per-token detokenization gives for the same requests."""
    from tests.support import tiny_settings
    from zoomguard.detector.factory import build_detector

    recording = RecordingEngine(inprocess_engine)
    settings = tiny_settings(str(tiny_model), detector={"min_regions": 1})
    detector = build_detector(settings.engine, settings.detector, recording)
    samples = make_samples(3, seed=900, size=(320, 240))
    _detect_batch(loop, detector, [s.data for s in samples])
    assert {r.request_id.rsplit(":", 1)[1] for r in recording.requests} == {"locate", "examine"}
    scored = 0
    for request in recording.requests:
        ours = loop.run(inprocess_engine.generate(request))
        text, p_ai = _vllm_detokenized(loop, inprocess_engine, request)
        assert ours.text == text
        if p_ai is None:
            assert p_ai_from_logprobs(ours.tokens) is None
            continue
        scored += 1
        assert p_ai_from_logprobs(ours.tokens) == pytest.approx(p_ai, abs=1e-9)
        # only the tail from the verdict marker on is scored token by token
        assert len(ours.tokens) < ours.completion_tokens
    assert scored >= len(samples)
