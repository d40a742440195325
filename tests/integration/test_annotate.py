"""`zoomguard annotate` against a real vLLM OpenAI-compatible server (tiny random model: the mechanics count)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from zoomguard.cli import main
from zoomguard.dataset.records import TrainingRecord, read_manifest, read_split, split_of, write_dataset
from zoomguard.samples import make_samples

SIZE = (320, 240)


def record(event_id: str, data: bytes, label: str, **extra: object) -> TrainingRecord:
    sha = hashlib.sha256(data).hexdigest()
    return TrainingRecord.model_validate(
        {"event_id": event_id, "label": label, "image_bytes": data, "image_sha256": sha, "width": SIZE[0],
         "height": SIZE[1], "split": split_of(sha, 0.3), "reviewer": "rev", **extra}
    )  # fmt: skip


def test_annotate_asks_the_teacher_for_what_is_missing(
    vllm_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    samples = make_samples(4, seed=4242, size=SIZE)
    before = {
        r.event_id: r
        for r in [
            record("bare", samples[0].data, "ai_generated"),
            record("explained", samples[1].data, "real", explanation="the reflections line up"),
            record("boxed", samples[2].data, "ai_generated", boxes=[(10, 20, 120, 90)], findings=["hand"]),
            record("complete", samples[3].data, "real", explanation="fine", boxes=[(1, 1, 50, 50)], findings=[""]),
        ]
    }
    dataset = tmp_path / "dataset"
    write_dataset(dataset, before.values(), {"format": "test"})
    config = tmp_path / "annotate.json"
    config.write_text(
        json.dumps(
            {"annotate": {"max_pixels": 224 * 224, "max_tokens": 256, "explanation_max_chars": 120,
                          "finding_max_chars": 32, "max_regions": 3, "min_regions": 1, "concurrency": 3}}
        )
    )  # fmt: skip

    code = main(
        ["annotate", "--dataset", str(dataset), "--server", vllm_server, "--model", "tiny", "--family", "qwen2_5_vl",
         "--config", str(config), "--no-progress"]
    )  # fmt: skip
    summary = json.loads(capsys.readouterr().out)

    assert code == 0
    assert summary["teacher"] == "tiny" and summary["records"] == 4 and summary["complete"] == 1
    assert summary["requests"] == 3  # one per incomplete record, each answered by the server
    assert summary["annotated"] + sum(summary["failed"].values()) == 3
    # min_regions 1: the grammar makes even the random model mark a region in every answer; its random
    # coordinates mostly fall outside the image, so they are dropped, and what is kept must fit (below)
    assert summary["boxes_proposed"] >= 3 - summary["failed"].get("unparseable", 0)
    assert summary["boxes_added"] <= summary["boxes_proposed"] - summary["boxes_dropped"]
    assert set(summary["failed"]) <= {"nothing_usable", "unparseable"}  # never unavailable or refused

    after = {r.event_id: r for split in ("train", "test") for r in read_split(dataset, split)}
    assert after["complete"] == before["complete"]
    assert after["explained"].explanation == "the reflections line up"  # the reviewer's, kept
    assert (after["boxed"].boxes, after["boxed"].findings) == ([(10, 20, 120, 90)], ["hand"])
    for item in after.values():
        assert item.image_bytes == before[item.event_id].image_bytes and item.split == before[item.event_id].split
        assert len(item.boxes) == len(item.findings)
        for x1, y1, x2, y2 in item.boxes:
            assert 0 <= x1 < x2 <= SIZE[0] and 0 <= y1 < y2 <= SIZE[1]
            assert (x2 - x1) * (y2 - y1) <= 0.5 * SIZE[0] * SIZE[1]
    filled = read_manifest(dataset)["annotate"]["filled"]  # type: ignore[index]
    assert len(filled) == summary["annotated"]
    for event_id, fields in filled.items():
        if "explanation" in fields:
            assert after[event_id].explanation and not before[event_id].explanation
        if "boxes" in fields:
            assert after[event_id].boxes and not before[event_id].boxes

    cache = (dataset / "teacher-annotations.jsonl").read_text().splitlines()
    assert len(cache) == 3 - summary["failed"].get("unparseable", 0)  # every parsed answer is kept for reuse
    assert main(["annotate", "--dataset", str(dataset), "--server", vllm_server, "--model", "tiny", "--family",
                 "qwen2_5_vl", "--config", str(config)]) == 0  # fmt: skip
    captured = capsys.readouterr()
    again = json.loads(captured.out)
    assert "annotate:" in captured.err  # the progress bar, on stderr
    assert again["requests"] + again["from_cache"] + again["complete"] == 4
    assert again["requests"] == summary["failed"].get("unparseable", 0)  # cached answers are not asked again


def test_annotate_reports_an_unreachable_teacher(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sample = make_samples(1, seed=1, size=SIZE)[0]
    dataset = tmp_path / "dataset"
    write_dataset(dataset, [record("bare", sample.data, "ai_generated")], {"format": "test"})
    code = main(
        ["annotate", "--dataset", str(dataset), "--server", "http://127.0.0.1:9", "--model", "tiny", "--family",
         "qwen2_5_vl", "--no-progress"]
    )  # fmt: skip
    summary = json.loads(capsys.readouterr().out)
    assert code == 1 and summary["failed"] == {"teacher_unavailable": 1}
    assert read_split(dataset, "train") + read_split(dataset, "test") == [record("bare", sample.data, "ai_generated")]
