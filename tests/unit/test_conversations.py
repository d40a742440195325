"""Records -> ZoomIn chat samples: the serving prompts, images and crops, and targets the serving parser reads."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from zoomguard.dataset.conversations import (
    ConversationSpec,
    Sample,
    build_samples,
    reference_explanation,
    to_model_space,
)
from zoomguard.dataset.records import TrainingRecord
from zoomguard.detector.crops import plan_crops
from zoomguard.detector.families import FAMILIES
from zoomguard.detector.geometry import Box, iou
from zoomguard.detector.parsing import parse_answer
from zoomguard.detector.prompts import EXAMINE_WITHOUT_CROPS, examine_prompt, locate_prompt
from zoomguard.detector.settings import CropSettings
from zoomguard.errors import BadInputError
from zoomguard.samples import encode, make_image

SIZE = (640, 480)
BOXES = [(40, 60, 200, 220), (400, 300, 520, 420)]


def record(**changes: Any) -> TrainingRecord:
    data = encode(make_image(7, SIZE), "PNG")
    fields: dict[str, Any] = {
        "event_id": "evt-1",
        "label": "ai_generated",
        "image_bytes": data,
        "image_sha256": hashlib.sha256(data).hexdigest(),
        "width": SIZE[0],
        "height": SIZE[1],
        "boxes": BOXES,
        "findings": ["six fingers", "melted text"],
        "explanation": "The left hand has six fingers and the sign text melts.",
        "source": "unit",
    }
    return TrainingRecord(**{**fields, **changes})


def spec(family: str = "qwen2_5_vl") -> ConversationSpec:
    return ConversationSpec(FAMILIES[family], 56 * 56, 224 * 224, 4, CropSettings(max_crops=3, zoom_target_side=224))


def by_stage(samples: list[Sample]) -> dict[str, Sample]:
    return {s.stage: s for s in samples}


def placeholders(message: dict[str, Any]) -> int:
    return sum(1 for part in message["content"] if part["type"] == "image")


def text_of(message: dict[str, Any]) -> str:
    return "".join(part.get("text", "") for part in message["content"] if part["type"] == "text")


def test_locate_sample_is_the_serving_query_one() -> None:
    s = spec()
    locate = by_stage(build_samples([record()], s))["locate"]
    model_size = s.family.model_size(*SIZE, s.min_pixels, s.max_pixels)
    assert [m["role"] for m in locate.prompt] == ["user"]
    assert locate.prompt[0]["content"][0] == {"type": "image"}  # image before the text, as serving sends it
    assert text_of(locate.prompt[0]) == locate_prompt(s.family.coordinate_instruction(model_size), s.max_regions)
    assert [image.size for image in locate.images] == [model_size]
    assert (locate.model_width, locate.model_height, locate.width, locate.height) == (*model_size, *SIZE)
    assert locate.ref_boxes == [list(b) for b in BOXES]


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen2_vl"])
def test_locate_target_parses_and_maps_back_onto_the_reference_boxes(family: str) -> None:
    s = spec(family)
    locate = by_stage(build_samples([record()], s))["locate"]
    text = text_of(locate.completion[0])
    assert '"verdict":"ai_generated"}' in text and " " not in text.split('"explanation"')[0]  # compact JSON
    parsed = parse_answer(text, with_regions=True)
    assert parsed.ok and parsed.verdict == "ai_generated" and not parsed.repaired
    assert parsed.explanation == record().explanation
    assert [r.finding for r in parsed.regions] == ["six fingers", "melted text"]
    model_size = (locate.model_width, locate.model_height)
    for region, reference in zip(parsed.regions, BOXES, strict=True):
        back = Box(*s.family.to_original(region.box, model_size, SIZE))
        assert iou(back, Box(*map(float, reference))) > 0.95  # only rounding to the model's integers is lost
    if family == "qwen2_vl":
        assert all(0 <= v <= 1000 for r in parsed.regions for v in r.box)


def test_examine_sample_is_query_one_turn_plus_crops_and_examine_prompt() -> None:
    s = spec()
    samples = by_stage(build_samples([record()], s))
    locate, examine = samples["locate"], samples["examine"]
    assert [m["role"] for m in examine.prompt] == ["user", "assistant", "user"]
    assert examine.prompt[0] == locate.prompt[0]
    assert examine.prompt[1] == locate.completion[0]  # the reference Query 1 answer
    crops = plan_crops([Box(*map(float, b)) for b in BOXES], *SIZE, s.crops)
    assert len(crops) == 2
    assert placeholders(examine.prompt[2]) == 2 and examine.prompt[2]["content"][:2] == [{"type": "image"}] * 2
    assert text_of(examine.prompt[2]) == examine_prompt(["six fingers", "melted text"])
    assert sum(placeholders(m) for m in examine.prompt) == len(examine.images) == 3
    assert examine.images[0] is locate.images[0]
    for image, plan in zip(examine.images[1:], crops, strict=True):  # zoomed, then snapped to a model size
        assert image.size == s.family.model_size(*plan.output_size, s.min_pixels, s.max_pixels)
    parsed = parse_answer(text_of(examine.completion[0]), with_regions=False)
    assert parsed.ok and parsed.verdict == "ai_generated" and parsed.regions == ()
    assert parsed.explanation == record().explanation


def test_a_record_without_boxes_gets_no_crops_and_the_whole_image_prompt() -> None:
    samples = by_stage(build_samples([record(label="real", boxes=[], findings=[], explanation=None)], spec()))
    examine = samples["examine"]
    assert text_of(examine.prompt[2]) == EXAMINE_WITHOUT_CROPS
    assert len(examine.images) == 1 and placeholders(examine.prompt[2]) == 0
    locate_answer = parse_answer(text_of(samples["locate"].completion[0]), with_regions=True)
    assert locate_answer.regions == () and locate_answer.verdict == "real"
    assert parse_answer(text_of(examine.completion[0]), with_regions=False).explanation == (
        "The image is a real photograph."
    )
    assert examine.reference_explanation is None  # no explanation reward without a reviewer's text


def test_reference_boxes_are_clamped_and_degenerate_ones_dropped() -> None:
    samples = by_stage(build_samples([record(boxes=[(600, 400, 900, 900), (10, 10, 10, 50)], findings=[])], spec()))
    assert samples["locate"].ref_boxes == [[600, 400, 640, 480]]
    assert len(samples["examine"].images) == 2


def test_stages_can_be_chosen_and_order_is_record_then_stage() -> None:
    records = [record(), record(event_id="evt-2", label="real")]
    assert [(s.event_id, s.stage) for s in build_samples(records, spec())] == [
        ("evt-1", "locate"),
        ("evt-1", "examine"),
        ("evt-2", "locate"),
        ("evt-2", "examine"),
    ]
    assert [s.stage for s in build_samples(records, spec(), stages=("examine",))] == ["examine", "examine"]


def test_generated_explanation_names_label_and_findings() -> None:
    assert reference_explanation(record(explanation="  ")) == (
        "The image is AI-generated. Evidence: six fingers; melted text."
    )


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen2_vl", "qwen3_vl"])
def test_to_model_space_inverts_to_original(family: str) -> None:
    adapter = FAMILIES[family]
    model_size = adapter.model_size(*SIZE, 56 * 56, 224 * 224)
    box = Box(40, 60, 200, 220)
    back = adapter.to_original(tuple(map(float, to_model_space(box, adapter, model_size, SIZE))), model_size, SIZE)
    assert all(abs(a - b) <= 4 for a, b in zip(back, (40, 60, 200, 220), strict=True))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"image_bytes": b""}, "evt-1: no image bytes"),
        ({"image_bytes": b"not an image"}, "evt-1"),
    ],
)
def test_missing_or_broken_images_are_bad_input(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        build_samples([record(**changes)], spec())
