"""The ZoomIn flow's pure logic with a scripted engine: what is asked, in which order, and what is decided."""

from __future__ import annotations

import asyncio
import json

import pytest

from zoomguard.detector.engines.base import GenerationRequest
from zoomguard.detector.engines.scripted import ScriptedEngine
from zoomguard.detector.families import FAMILIES
from zoomguard.detector.settings import DetectorSettings
from zoomguard.detector.zoomin import ZoomInDetector
from zoomguard.samples import encode, make_image
from zoomguard.schemas.answers import ascii_text_pattern
from zoomguard.schemas.detection import Detection, ModelInfo

MODEL = ModelInfo(name="scripted", version="v1", family="qwen2_5_vl")


def _answer(verdict: str, regions: list[tuple[list[int], str]] | None = None, explanation: str = "because") -> str:
    body: dict[str, object] = {"explanation": explanation}
    if regions is not None:
        body["regions"] = [{"bbox_2d": box, "finding": finding} for box, finding in regions]
    body["verdict"] = verdict
    return json.dumps(body)


def _detect(script, settings: DetectorSettings | None = None, size=(640, 480)) -> tuple[Detection, ScriptedEngine]:  # type: ignore[no-untyped-def]
    engine = ScriptedEngine(script)
    detector = ZoomInDetector(engine, settings or DetectorSettings(), FAMILIES["qwen2_5_vl"], MODEL)
    data = encode(make_image(1, size), "PNG")
    return asyncio.run(detector.detect_bytes(data, request_id="t")), engine


def _is_locate(request: GenerationRequest) -> bool:
    return len(request.turns) == 1


def test_two_queries_and_boxes_mapped_to_original_pixels() -> None:
    # 640x480 with max_pixels 320*240 -> the model sees 308x224 (smart resize)
    settings = DetectorSettings(max_pixels=320 * 240)

    def script(request: GenerationRequest) -> tuple[str, float]:
        if _is_locate(request):
            w, h = request.turns[0].images[0].size
            return _answer("real", [([0, 0, w // 2, h // 2], "hand")]), 0.4
        return _answer("ai_generated", explanation="zoomed: six fingers"), 0.9

    detection, engine = _detect(script, settings)
    locate, examine = engine.requests
    model_w, model_h = locate.turns[0].images[0].size
    assert (model_w % 28, model_h % 28) == (0, 0) and model_w * model_h <= 320 * 240
    # Query 2 continues Query 1's conversation: same first turn, Query 1's answer, then the crops
    assert examine.turns[0] == locate.turns[0]
    assert examine.turns[1].role == "assistant" and '"hand"' in examine.turns[1].text
    assert len(examine.turns[2].images) == 1 and "1. hand" in examine.turns[2].text
    assert detection.regions[0].box == (0, 0, 320, 240)
    assert detection.regions[0].box_norm == (0.0, 0.0, 0.5, 0.5)
    assert detection.decision == "ai_generated" and detection.p_ai == pytest.approx(0.9)
    assert detection.first_pass.verdict == "real" and detection.first_pass.p_ai == pytest.approx(0.4)
    assert detection.explanation == "zoomed: six fingers"
    assert detection.examined and detection.reason is None


def test_untrusted_boxes_are_clamped_dropped_and_capped() -> None:
    settings = DetectorSettings(max_regions=2)

    def script(request: GenerationRequest) -> tuple[str, float]:
        if _is_locate(request):
            regions = [
                ([-50, -50, 10_000, 10_000], "everything"),
                ([5, 5, 5, 90], "degenerate"),
                ([100, 100, 50, 50], "reversed"),
                ([1, 1, 30, 30], "small"),
                ([2, 2, 40, 40], "over cap"),
            ]
            return _answer("real", regions), 0.5
        return _answer("real"), 0.1

    detection, engine = _detect(script, settings)
    findings = [r.finding for r in detection.regions]
    # clamped to the image; zero-width dropped; reversed corners ordered; capped at max_regions
    assert findings == ["everything", "reversed"]
    assert detection.regions[0].box_norm == (0.0, 0.0, 1.0, 1.0)
    # a region over half the image is listed but never cropped
    assert len(engine.requests[1].turns[2].images) == 1


@pytest.mark.parametrize(
    ("policy", "queries", "decision"), [("skip", 1, "ai_generated"), ("examine_full_image", 2, "real")]
)
def test_no_region_policy(policy: str, queries: int, decision: str) -> None:
    def script(request: GenerationRequest) -> tuple[str, float]:
        return (_answer("ai_generated", []), 0.95) if _is_locate(request) else (_answer("real"), 0.05)

    detection, engine = _detect(script, DetectorSettings(no_region_policy=policy))  # type: ignore[arg-type]
    assert len(engine.requests) == queries
    assert detection.decision == decision
    assert detection.examined is (queries == 2)
    if queries == 2:
        assert engine.requests[1].turns[2].images == ()


@pytest.mark.parametrize(
    ("locate", "examine", "decision", "reason"),
    [
        ("garbage", "garbage", "uncertain", "unparseable_examine"),
        (_answer("real", []), '{"explanation": "cut off', "uncertain", "unparseable_examine"),
        ("not json", (_answer("real"), 0.1), "real", None),
    ],
)
def test_unparseable_answers_are_results(locate: object, examine: object, decision: str, reason: str | None) -> None:
    def script(request: GenerationRequest) -> object:
        return locate if _is_locate(request) else examine

    detection, _ = _detect(script)  # type: ignore[arg-type]
    assert detection.decision == decision
    assert detection.reason == reason


def test_unparseable_locate_with_skip_policy() -> None:
    detection, engine = _detect(lambda request: "???", DetectorSettings(no_region_policy="skip"))
    assert len(engine.requests) == 1
    assert (detection.decision, detection.reason, detection.p_ai) == ("uncertain", "unparseable_locate", None)


@pytest.mark.parametrize(
    ("p_ai", "decision", "reason"),
    [(0.5, "uncertain", "low_confidence"), (None, "uncertain", "no_confidence")],
)
def test_uncertain_reasons(p_ai: float | None, decision: str, reason: str) -> None:
    def script(request: GenerationRequest) -> object:
        text = _answer("real", []) if _is_locate(request) else _answer("real")
        return (text, p_ai) if p_ai is not None else text

    detection, _ = _detect(script)  # type: ignore[arg-type]
    assert (detection.decision, detection.reason) == (decision, reason)


def test_answer_schemas_are_sent_with_caps() -> None:
    settings = DetectorSettings(max_regions=3, explanation_max_chars=99)
    _, engine = _detect(lambda r: (_answer("real", []) if _is_locate(r) else _answer("real"), 0.1), settings)
    locate_schema = engine.requests[0].json_schema
    assert locate_schema["properties"]["regions"]["maxItems"] == 3
    assert locate_schema["properties"]["explanation"]["pattern"] == ascii_text_pattern(99)  # ascii by default
    assert list(locate_schema["properties"]) == ["explanation", "regions", "verdict"]
    coordinate = locate_schema["properties"]["regions"]["items"]["properties"]["bbox_2d"]["items"]
    assert coordinate["minimum"] == 0 and coordinate["maximum"] >= 1000
    assert "regions" not in engine.requests[1].json_schema["properties"]


def test_token_budgets_hold_the_longest_answer_the_schema_allows() -> None:
    """A constrained answer cut by max_tokens is unparseable: the budget comes from the caps, never below them."""
    settings = DetectorSettings(max_regions=2, explanation_max_chars=50, finding_max_chars=10)
    longest_examine = '{"explanation":"' + "e" * 50 + '","verdict":"ai_generated"}'
    _, engine = _detect(lambda r: (_answer("real", []) if _is_locate(r) else _answer("real"), 0.1), settings)
    locate, examine = (request.max_tokens for request in engine.requests)
    assert examine == len(longest_examine) + 1  # one byte per token at most, plus the end of sequence
    region = '{"bbox_2d":[%d,%d,%d,%d],"finding":"%s"}'
    assert locate > len('{"explanation":"' + "e" * 50 + '","regions":[' + ",".join([region] * 2) + "]")
    unicode = DetectorSettings(max_regions=2, explanation_max_chars=50, finding_max_chars=10, answer_charset="unicode")
    assert unicode.answer_budgets(1000)[1] == len(longest_examine) + 3 * 50 + 1
    with pytest.raises(ValueError, match=r"detector\.locate_max_tokens=64 can cut answers"):
        DetectorSettings(
            max_regions=2, explanation_max_chars=50, finding_max_chars=10, locate_max_tokens=64
        ).answer_budgets(1000)


@pytest.mark.parametrize("cap", [1, 99, 127, 128, 129, 255, 256, 600, 1000])
def test_the_ascii_cap_admits_exactly_up_to_the_cap(cap: int) -> None:
    """Checked with the grammar backend the engines use, not with Python's re alone."""
    import re

    import xgrammar
    from xgrammar.testing import _is_grammar_accept_string

    pattern = ascii_text_pattern(cap)
    schema = {"type": "object", "properties": {"t": {"type": "string", "pattern": pattern}}, "required": ["t"]}
    grammar = xgrammar.Grammar.from_json_schema(json.dumps(schema), any_whitespace=False, separators=(",", ":"))
    for length in sorted({0, 1, cap - 1, cap, cap + 1, cap // 2, 128, 129} - {-1}):
        text = "a~ " * (length // 3) + "b" * (length % 3)
        fits = length <= cap
        assert bool(re.fullmatch(pattern.strip("^$"), text)) is fits, (cap, length)
        assert _is_grammar_accept_string(grammar, json.dumps({"t": text}, separators=(",", ":"))) is fits, (cap, length)
    assert not _is_grammar_accept_string(grammar, '{"t":"a\\"b"}')  # no escapes
    assert not _is_grammar_accept_string(grammar, '{"t":"café"}')  # ASCII only
