"""Annotate's pure part (what to ask, how answers fill records) and its flow on a scripted teacher."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from zoomguard.dataset.records import TrainingRecord, read_manifest, read_split, split_of, write_dataset
from zoomguard.dataset.settings import AnnotateSettings
from zoomguard.dataset.teacher import (
    TeacherAnswer,
    fill,
    need_of,
    read_teacher_answer,
    teacher_engine_settings,
    teacher_prompt,
    teacher_schema,
)
from zoomguard.dataset.teacher_labels import annotate_dataset
from zoomguard.detector.engines.base import GenerationRequest
from zoomguard.detector.engines.scripted import ScriptedEngine
from zoomguard.detector.engines.settings import EngineSettings
from zoomguard.detector.families import FAMILIES
from zoomguard.detector.geometry import Box
from zoomguard.errors import BadInputError, ConfigError
from zoomguard.media.images import ImageLimits
from zoomguard.samples import make_samples

QWEN25 = FAMILIES["qwen2_5_vl"]
GRID = FAMILIES["qwen2_vl"]
SETTINGS = AnnotateSettings()


def record(event_id: str = "ev-1", *, label: str = "ai_generated", data: bytes = b"x", size: tuple[int, int] = (400, 300),
           **extra: Any) -> TrainingRecord:  # fmt: skip
    sha = hashlib.sha256(data).hexdigest()
    return TrainingRecord.model_validate(
        {"event_id": event_id, "label": label, "image_bytes": data, "image_sha256": sha, "width": size[0],
         "height": size[1], "split": split_of(sha, 0.3), "reviewer": "rev", **extra}
    )  # fmt: skip


def answer(
    explanation: str = "the hands melt", boxes: list[list[int]] | None = None, verdict: str = "ai_generated"
) -> str:
    regions = [{"bbox_2d": b, "finding": f"f{i}"} for i, b in enumerate(boxes or [])]
    return json.dumps({"explanation": explanation, "regions": regions, "verdict": verdict})


# ---------------------------------------------------------------- what is missing


@pytest.mark.parametrize(
    ("extra", "label", "regions_for_real", "expected"),
    [
        ({}, "ai_generated", True, (True, True)),
        ({"explanation": "  "}, "ai_generated", True, (True, True)),
        ({"explanation": "six fingers"}, "ai_generated", True, (False, True)),
        ({"boxes": [(1, 1, 9, 9)], "findings": [""]}, "ai_generated", True, (True, False)),
        ({"explanation": "ok", "boxes": [(1, 1, 9, 9)], "findings": [""]}, "real", True, (False, False)),
        ({}, "real", True, (True, True)),
        ({}, "real", False, (True, False)),
        ({"explanation": "sharp text"}, "real", False, (False, False)),
    ],
)
def test_need(extra: dict[str, Any], label: str, regions_for_real: bool, expected: tuple[bool, bool]) -> None:
    need = need_of(record(label=label, **extra), AnnotateSettings(regions_for_real=regions_for_real))
    assert (need.explanation, need.boxes) == expected
    assert need.any == any(expected)


# ---------------------------------------------------------------- what is asked


def test_schema_pins_the_verdict_to_the_known_label() -> None:
    schema = teacher_schema("real", QWEN25, SETTINGS)
    assert schema["properties"]["verdict"] == {"type": "string", "enum": ["real"]}
    assert schema["properties"]["regions"]["maxItems"] == SETTINGS.max_regions
    assert schema["required"] == ["explanation", "regions", "verdict"]
    assert "minItems" not in schema["properties"]["regions"]
    forced = teacher_schema("ai_generated", QWEN25, AnnotateSettings(min_regions=2))["properties"]["regions"]
    assert (forced["minItems"], forced["maxItems"]) == (2, SETTINGS.max_regions)
    no_real_regions = teacher_schema("real", QWEN25, AnnotateSettings(regions_for_real=False, min_regions=1))
    assert no_real_regions["properties"]["regions"]["maxItems"] == 0
    assert "minItems" not in no_real_regions["properties"]["regions"]
    assert (
        teacher_schema("ai_generated", GRID, SETTINGS)["properties"]["regions"]["items"]["properties"]["bbox_2d"][
            "items"
        ]["maximum"]
        == 1000
    )


def test_prompt_tells_the_label_and_the_reviewers_notes_in_model_coordinates() -> None:
    reviewed = record(explanation="warped fence", boxes=[(40, 30, 200, 150)], findings=["fence"], size=(400, 300))
    prompt = teacher_prompt(reviewed, GRID, (224, 168), SETTINGS)
    assert "known to be AI-generated" in prompt and '"verdict" ("ai_generated")' in prompt
    assert "'warped fence'" in prompt
    assert "[100, 100, 500, 500] (fence)" in prompt  # 0-1000 grid of the 400x300 original
    pixels = teacher_prompt(reviewed, QWEN25, (224, 168), SETTINGS)
    assert "[22, 17, 112, 84] (fence)" in pixels and "The image is 224x168 pixels" in pixels
    assert "a real photograph" in teacher_prompt(record(label="real"), QWEN25, (224, 168), SETTINGS)


# ---------------------------------------------------------------- reading answers


@pytest.mark.parametrize(
    ("family", "text", "expected"),
    [
        (QWEN25, answer(boxes=[[10, 20, 50, 60]]), ((20, 40, 100, 120),)),  # model pixels, x2
        (GRID, answer(boxes=[[100, 100, 250, 500]]), ((40, 30, 100, 150),)),  # 0-1000 grid
        (QWEN25, answer(boxes=[[50, 60, 10, 20]]), ((20, 40, 100, 120),)),  # corners reversed
        (QWEN25, answer(boxes=[[190, 140, 260, 220]]), ((380, 280, 400, 300),)),  # clamped to the image
        (QWEN25, answer(boxes=[[0, 0, 150, 150]]), ()),  # 300x300 of 400x300: over half the image, dropped
        (QWEN25, answer(boxes=[[5, 5, 5, 40]]), ()),  # no width
        (QWEN25, answer(boxes=[[i, i, i + 10, i + 10] for i in range(0, 100, 10)]), 6),  # capped at max_regions
    ],
)
def test_teacher_boxes_land_in_original_pixels(family: Any, text: str, expected: Any) -> None:
    got = read_teacher_answer(text, "ai_generated", family, (200, 150), (400, 300), SETTINGS)
    assert got.error is None and got.explanation == "the hands melt"
    if isinstance(expected, int):
        assert len(got.boxes) == expected == len(got.findings)
    else:
        assert got.boxes == expected


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (answer(verdict="real"), "verdict_disagrees"),
        ("I cannot help with that.", "unparseable"),
        ('{"explanation": "x", "regions": []}', "unparseable"),
    ],
)
def test_unusable_teacher_answers(text: str, error: str) -> None:
    assert read_teacher_answer(text, "ai_generated", QWEN25, (200, 150), (400, 300), SETTINGS).error == error


def test_fill_never_overwrites_what_the_reviewer_wrote() -> None:
    teacher = TeacherAnswer(explanation="teacher says", boxes=((1, 2, 30, 40),), findings=("t",))
    reviewed = record(explanation="reviewer says", boxes=[(5, 5, 50, 50)], findings=["r"])
    kept, filled = fill(reviewed, teacher)
    assert kept == reviewed and not (filled.explanation or filled.boxes)
    only_text = record(explanation="reviewer says")
    updated, filled = fill(only_text, teacher)
    assert (updated.explanation, updated.boxes, updated.findings) == ("reviewer says", [(1, 2, 30, 40)], ["t"])
    assert (filled.explanation, filled.boxes) == (False, True)
    blank, filled = fill(record(), TeacherAnswer(explanation="teacher says"))
    assert (blank.explanation, blank.boxes, filled.boxes) == ("teacher says", [], False)


# ---------------------------------------------------------------- the flow on a scripted teacher


def make_dataset(directory: Path) -> dict[str, TrainingRecord]:
    samples = make_samples(5, seed=70, size=(160, 120))
    records = [
        record("ev-bare", data=samples[0].data, size=(160, 120)),
        record("ev-text", data=samples[1].data, size=(160, 120), explanation="reviewer: smeared logo"),
        record("ev-full", data=samples[2].data, size=(160, 120), explanation="done", boxes=[(1, 1, 9, 9)], findings=["x"]),
        record("ev-real", label="real", data=samples[3].data, size=(160, 120)),
        record("ev-broken", data=b"not an image"),
    ]  # fmt: skip
    write_dataset(directory, records, {"format": "test"})
    return {r.event_id: r for r in records}


def script(request: GenerationRequest) -> str:
    """Boxes in the model's pixels; the real image's teacher disagrees with the label."""
    prompt = request.turns[0].text
    if "a real photograph" in prompt:
        return answer(verdict="ai_generated")
    return answer("teacher: odd light", boxes=[[4, 4, 40, 40]])


TEACHER = AnnotateSettings(server_urls=["http://teacher"], model_family="qwen2_5_vl")


def test_annotate_fills_gaps_keeps_reviewer_fields_and_counts_failures(tmp_path: Path) -> None:
    before = make_dataset(tmp_path)
    engine = ScriptedEngine(script, name="teacher-x")
    report = asyncio.run(annotate_dataset(TEACHER, ImageLimits(), tmp_path, engine))

    assert len(engine.requests) == 3  # ev-bare, ev-text, ev-real; ev-full is complete, ev-broken never decodes
    assert all(r.json_schema["properties"]["verdict"]["enum"] in (["ai_generated"], ["real"]) for r in engine.requests)
    assert report.summary() | {"failed": None} == {
        "teacher": "teacher-x", "records": 5, "complete": 1, "requests": 3, "from_cache": 0, "annotated": 2,
        "explanations_added": 1, "boxes_added": 2, "boxes_proposed": 2, "boxes_dropped": 0, "failed": None,
    }  # fmt: skip
    assert report.failed == {"verdict_disagrees": 1, "image_decode": 1}
    after = {r.event_id: r for split in ("train", "test") for r in read_split(tmp_path, split)}
    assert after["ev-text"].explanation == "reviewer: smeared logo"  # never overwritten
    assert after["ev-bare"].explanation == "teacher: odd light"
    mw, mh = QWEN25.model_size(160, 120, SETTINGS.min_pixels, SETTINGS.max_pixels)
    expected_box = Box(4 * 160 / mw, 4 * 120 / mh, 40 * 160 / mw, 40 * 120 / mh).rounded()
    assert after["ev-bare"].boxes == [expected_box] and after["ev-text"].boxes == [expected_box]
    assert after["ev-full"] == before["ev-full"] and after["ev-real"] == before["ev-real"]
    assert {e: after[e].split for e in after} == {e: before[e].split for e in before}
    manifest = read_manifest(tmp_path)
    assert manifest["format"] == "test" and sum(manifest["counts"].values()) == 5  # type: ignore[attr-defined]
    assert manifest["annotate"]["filled"] == {"ev-bare": ["explanation", "boxes"], "ev-text": ["boxes"]}  # type: ignore[index]


def test_a_rewritten_dataset_reuses_cached_teacher_answers(tmp_path: Path) -> None:
    make_dataset(tmp_path)
    asyncio.run(annotate_dataset(TEACHER, ImageLimits(), tmp_path, ScriptedEngine(script)))
    make_dataset(tmp_path)  # `collect` rewrote it: the teacher's fields are gone from the records
    assert read_split(tmp_path, "train") + read_split(tmp_path, "test")
    again = ScriptedEngine(script)
    report = asyncio.run(annotate_dataset(TEACHER, ImageLimits(), tmp_path, again))
    assert [r.request_id for r in again.requests] == ["annotate:ev-real"]  # only the one that failed is asked again
    assert (report.from_cache, report.annotated) == (2, 2)
    make_dataset(tmp_path)
    fresh = ScriptedEngine(script)
    asyncio.run(annotate_dataset(TEACHER, ImageLimits(), tmp_path, fresh, use_cache=False))
    assert sorted(r.request_id for r in fresh.requests) == ["annotate:ev-bare", "annotate:ev-real", "annotate:ev-text"]


def test_annotate_refuses_a_directory_that_is_not_a_dataset(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="run `zoomguard collect` first"):
        asyncio.run(annotate_dataset(TEACHER, ImageLimits(), tmp_path, ScriptedEngine(script)))


def test_teacher_servers_default_to_the_detectors_and_are_required() -> None:
    detector_servers = EngineSettings(server_urls=["http://a"], served_model_name="m")
    engine = teacher_engine_settings(AnnotateSettings(), detector_servers)
    assert (engine.mode, engine.server_urls, engine.served_model_name) == ("server", ["http://a"], "m")
    own = AnnotateSettings(server_urls=["http://t"], request_timeout_s=7)
    engine = teacher_engine_settings(own, detector_servers)
    assert (engine.server_urls, engine.served_model_name, engine.request_timeout_s) == (["http://t"], "", 7)
    with pytest.raises(ConfigError, match="teacher server"):
        teacher_engine_settings(AnnotateSettings(), EngineSettings())
