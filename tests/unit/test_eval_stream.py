"""Streamed scoring and the stages, with a scripted engine behind the real detector and cascade: images are read
only as slots free up, each stage decides what it should (the model runs once per image when both stages are
asked), and a dataset with too many problems gives no numbers."""

from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from zoomguard.detector.engines.base import GenerationRequest
from zoomguard.detector.engines.scripted import ScriptedEngine
from zoomguard.detector.families import FAMILIES
from zoomguard.detector.settings import DetectorSettings
from zoomguard.detector.zoomin import ZoomInDetector
from zoomguard.errors import BadInputError, ConfigError, EngineUnavailableError
from zoomguard.evaluation.eval_run import EvalRun, evaluate_source
from zoomguard.evaluation.scores import Prediction
from zoomguard.evaluation.settings import EvaluationSettings
from zoomguard.evaluation.sources.formats import open_dataset
from zoomguard.evaluation.sources.items import EvalItem, Problem, Row
from zoomguard.evaluation.stages import StageScorer, cascade_parts, load_bank
from zoomguard.evaluation.streaming import score_stream
from zoomguard.evidence.settings import EvidenceSettings
from zoomguard.known.hashing import pdq_of_image
from zoomguard.known.settings import KnownContentSettings
from zoomguard.media.settings import ImageLimits
from zoomguard.samples import encode, make_image, make_samples, with_a1111_parameters
from zoomguard.schemas.detection import ModelInfo

SIZE = (96, 72)


def _says_ai(request: GenerationRequest) -> tuple[str, float]:
    """Every image ai_generated with P(ai) 0.9, one region."""
    if len(request.turns) == 1:
        return (
            '{"explanation": "x", "regions": [{"box": [2, 2, 40, 30], "finding": "f"}], "verdict": "ai_generated"}',
            0.9,
        )
    return '{"explanation": "y", "verdict": "ai_generated"}', 0.9


def _detector(script: Any = _says_ai, **settings: Any) -> tuple[ZoomInDetector, ScriptedEngine]:
    engine = ScriptedEngine(script)
    info = ModelInfo(name="m", version="v1", family="qwen2_5_vl")
    return ZoomInDetector(engine, DetectorSettings(**settings), FAMILIES["qwen2_5_vl"], info), engine


def _item(index: int, label: str = "real", source: str = "s") -> EvalItem:
    return EvalItem(f"i{index}", label, label, source, f"loc{index}")  # type: ignore[arg-type]


# ---------------------------------------------------------------- the stream


def test_no_more_than_concurrency_images_are_in_memory_and_order_is_kept() -> None:
    rows: list[Row] = [_item(i) for i in range(40)]
    read = finished = peak = 0

    def images() -> Iterator[bytes | Problem]:
        nonlocal read
        for i in range(40):
            read += 1
            yield b"x" * (i + 1)

    async def score(item: EvalItem, data: bytes, index: int) -> dict[str, Prediction]:
        nonlocal finished, peak
        peak = max(peak, read - finished)  # images read and not yet scored, this one included
        await asyncio.sleep(0.001 * ((index * 7) % 5))  # finish out of order
        finished += 1
        return {"model": Prediction(item.item_id, item.label, "real", 0.1, decision_source="model")}

    result = asyncio.run(score_stream(rows, images(), score, ["model"], concurrency=4, progress=False))
    assert 1 < peak <= 4
    assert [p.event_id for p in result.predictions["model"]] == [f"i{i}" for i in range(40)]
    assert result.problems == [] and result.fingerprint.startswith("sha256:")


def test_problems_are_skipped_and_kept_apart() -> None:
    rows: list[Row] = [_item(0), Problem("loc1", "unknown label 'x'"), _item(2), _item(3)]
    images: list[bytes | Problem] = [b"a", b"b", Problem("loc2", "unreadable: gone", "reading"), b"d"]
    scored: list[str] = []

    async def score(item: EvalItem, data: bytes, index: int) -> dict[str, Prediction] | Problem:
        scored.append(item.item_id)
        if item.item_id == "i3":
            return Problem(item.location, "unreadable image: truncated", "decoding", item.item_id)
        return {"model": Prediction(item.item_id, item.label, "real", 0.1)}

    result = asyncio.run(score_stream(rows, iter(images), score, ["model"], concurrency=2, progress=False))
    assert sorted(scored) == ["i0", "i3"]  # the listing problem and the unreadable image never reach the model
    assert [p.event_id for p in result.predictions["model"]] == ["i0"]
    assert [(p.item_id, p.phase) for p in result.problems] == [("i2", "reading"), ("i3", "decoding")]


def test_an_engine_failure_ends_the_run_with_that_error_and_a_short_dataset_is_refused() -> None:
    rows: list[Row] = [_item(i) for i in range(5)]

    async def down(item: EvalItem, data: bytes, index: int) -> dict[str, Prediction]:
        raise EngineUnavailableError("engine down")

    with pytest.raises(EngineUnavailableError, match="engine down"):
        asyncio.run(score_stream(rows, iter([b"x"] * 5), down, ["model"], concurrency=2, progress=False))

    async def fine(item: EvalItem, data: bytes, index: int) -> dict[str, Prediction]:
        return {"model": Prediction(item.item_id, item.label, "real", 0.1)}

    with pytest.raises(BadInputError, match="fewer images than rows"):
        asyncio.run(score_stream(rows, iter([b"x"] * 3), fine, ["model"], concurrency=2, progress=False))
    with pytest.raises(BadInputError, match="more images than rows"):
        asyncio.run(score_stream(rows, iter([b"x"] * 6), fine, ["model"], concurrency=2, progress=False))


# ---------------------------------------------------------------- stages


def _parts(**known: Any) -> Any:
    return cascade_parts(EvidenceSettings(), KnownContentSettings(**known), ImageLimits(), "")


def test_both_stages_run_the_model_once_unless_a_stage_before_it_decided() -> None:
    detector, engine = _detector()
    scorer = StageScorer(detector, "both", _parts())
    plain = encode(make_image(1, SIZE), "PNG")
    marked = with_a1111_parameters(make_image(2, SIZE))
    unmarked = asyncio.run(scorer.score(_item(0, "real"), plain, 0))
    assert isinstance(unmarked, dict) and len(engine.requests) == 2  # Query 1 and 2, once for both stages
    assert unmarked["model"] == unmarked["cascade"] and unmarked["model"].decision_source == "model"
    found = asyncio.run(scorer.score(_item(1, "ai_generated"), marked, 1))
    assert isinstance(found, dict) and len(engine.requests) == 4  # the cascade did not ask; the model alone did
    assert found["cascade"].decision_source == "evidence" and found["cascade"].p_ai is None
    assert found["model"].decision_source == "model" and found["model"].p_ai == pytest.approx(0.9, abs=1e-3)


def test_an_undecodable_image_is_a_problem_and_an_oversized_one_an_error() -> None:
    detector, _ = _detector(limits=ImageLimits(max_bytes=2_000))
    scorer = StageScorer(detector, "both", _parts())
    broken = asyncio.run(scorer.score(_item(0), b"\x89PNG\r\n\x1a\n truncated", 0))
    assert isinstance(broken, Problem) and broken.phase == "decoding" and broken.reason.startswith("unreadable image")
    large = asyncio.run(scorer.score(_item(1), encode(make_image(3, (300, 300)), "PNG"), 1))
    assert isinstance(large, dict)
    assert {stage: (p.decision, p.error is not None) for stage, p in large.items()} == {
        "model": ("error", True), "cascade": ("error", True)
    }  # fmt: skip
    assert large["model"].error is not None and large["model"].error.startswith("image_too_large")


def _bank_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="") as sink:
        writer = csv.writer(sink)
        writer.writerow(["pdq", "label", "quality"])
        writer.writerows([(pdq, label, "100") for pdq, label in rows])
    return path


def test_a_bank_from_a_hash_list_decides_its_images_in_the_cascade(tmp_path: Path) -> None:
    photo = make_image(11, (160, 120))
    pdq = pdq_of_image(photo).hex
    csv_path = _bank_csv(tmp_path / "bank.csv", [(pdq, "real"), ("z" * 64, "real")])
    bank, description = load_bank(csv_path, KnownContentSettings())
    assert len(bank) == 1 and description["entries"] == 1 and description["bad_rows"][0]["line"] == 3
    parts = cascade_parts(EvidenceSettings(), KnownContentSettings(), ImageLimits(), str(csv_path))
    detector, engine = _detector()
    outcome = asyncio.run(StageScorer(detector, "cascade", parts).score(_item(0), encode(photo, "JPEG"), 0))
    assert isinstance(outcome, dict) and list(outcome) == ["cascade"]
    assert outcome["cascade"].decision == "real" and outcome["cascade"].decision_source == "known_content"
    assert engine.requests == []
    with pytest.raises(ConfigError, match=r"known.enabled is false"):
        load_bank(csv_path, KnownContentSettings(enabled=False))


# ---------------------------------------------------------------- a whole run


def _folder(root: Path, broken: int = 0, stray: int = 0) -> Path:
    for generator, seed in (("gen-a", 0), ("gen-b", 10)):
        for folder in ("0_real", "1_fake"):
            for sample in make_samples(3, seed=seed + (5 if folder == "1_fake" else 0), size=SIZE):
                target = root / generator / folder / sample.name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(sample.data)
    for i in range(broken):
        (root / "gen-a" / "1_fake" / f"broken-{i}.png").write_bytes(b"not an image")
    for i in range(stray):
        (root / f"stray-{i}.png").write_bytes(make_samples(1)[0].data)
    return root


def _run(root: Path, out: Path | None, stages: str = "model", **dataset: Any) -> tuple[EvalRun, ScriptedEngine]:
    evaluation = EvaluationSettings.model_validate({"stages": stages, "concurrency": 3, "dataset": dataset})
    detector, engine = _detector()
    source = open_dataset(str(root), evaluation.dataset, "test")
    parts = _parts() if stages != "model" else None
    run = asyncio.run(
        evaluate_source(detector, source, evaluation, DetectorSettings(), cascade=parts, out_dir=out,
                        command="zoomguard eval --dataset d", progress=False)
    )  # fmt: skip
    return run, engine


def test_a_run_writes_the_reports_the_table_and_the_problems(tmp_path: Path) -> None:
    root = _folder(tmp_path / "bench", broken=1)
    run, engine = _run(root, tmp_path / "out", max_problem_rate=0.1)
    assert len(engine.requests) == 2 * 12  # the 12 readable images, two queries each
    [result] = run.results
    assert result.metrics["count"] == 12 and result.metrics["labels"] == {"ai_generated": 6, "real": 6}
    # it says ai_generated to everything: right on every AI image, wrong on every real one
    overall, *per_source = run.table["rows"]
    assert (overall["source"], overall["count"], overall["accuracy"]) == ("(all)", 12, 0.5)
    assert (overall["accuracy_ai"], overall["accuracy_real"]) == (1.0, 0.0)
    assert overall["decided_by"] == {"evidence": 0, "known_content": 0, "model": 12, "error": 0}
    assert [(r["source"], r["count"]) for r in per_source] == [("gen-a", 6), ("gen-b", 6)]
    assert run.dataset["items"] == 12 and run.dataset["rows"] == 13
    assert run.dataset["problems"]["count"] == 1 and run.dataset["problems"]["by_phase"] == {"decoding": 1}
    assert run.dataset["labels_seen"] == {
        "0_real": {"label": "real", "count": 6},
        "1_fake": {"label": "ai_generated", "count": 7},
    }
    out = tmp_path / "out"
    assert {p.name for p in out.iterdir()} == {
        "report.json", "predictions.jsonl", "reliability.png", "confusion.png", "table.json", "table.md", "problems.jsonl"
    }  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    assert report["stage"] == "model" and report["decided_by"] == {"model": 12}
    assert report["dataset"]["fingerprint"] == run.dataset["fingerprint"] == run.table["dataset"]["fingerprint"]
    problems = [json.loads(line) for line in (out / "problems.jsonl").read_text().splitlines()]
    assert [(p["item_id"], p["phase"]) for p in problems] == [("gen-a/1_fake/broken-0.png", "decoding")]
    table = json.loads((out / "table.json").read_text())
    assert table["command"] == "zoomguard eval --dataset d" and table["stages"] == ["model"]
    markdown = (out / "table.md").read_text()
    assert "| model | **bench** | 12 | 0.500 | 0.000 | 1.000 |" in markdown and "| model | gen-b | 6 |" in markdown
    assert run.dataset["fingerprint"] in markdown and "`zoomguard eval --dataset d`" in markdown


def test_the_fingerprint_follows_the_files_and_labels(tmp_path: Path) -> None:
    first, _ = _run(_folder(tmp_path / "a"), None)
    again, _ = _run(_folder(tmp_path / "b"), None)  # the same files elsewhere: the same dataset
    assert first.dataset["fingerprint"] == again.dataset["fingerprint"]
    relabelled, _ = _run(tmp_path / "b", None, label_map=["0_real=ai_generated"])
    assert relabelled.dataset["fingerprint"] != first.dataset["fingerprint"]


def test_both_stages_write_a_folder_each_and_one_table(tmp_path: Path) -> None:
    root = _folder(tmp_path / "bench")
    (root / "gen-a" / "1_fake" / "marked.png").write_bytes(with_a1111_parameters(make_image(50, SIZE)))
    run, engine = _run(root, tmp_path / "out", stages="both")
    assert len(engine.requests) == 2 * 13  # the marked image: once for the model alone, never in the cascade
    assert [r.spec.role for r in run.results] == ["model", "cascade"]
    decided = {row["stage"]: row["decided_by"] for row in run.table["rows"] if row["source"] == "(all)"}
    assert decided == {
        "model": {"evidence": 0, "known_content": 0, "model": 13, "error": 0},
        "cascade": {"evidence": 1, "known_content": 0, "model": 12, "error": 0},
    }
    for stage in ("model", "cascade"):
        assert (tmp_path / "out" / stage / "report.json").is_file()
    assert (tmp_path / "out" / "table.md").is_file() and not (tmp_path / "out" / "report.json").exists()


def test_too_many_problems_refuse_before_the_model_runs(tmp_path: Path) -> None:
    root = _folder(tmp_path / "bench", stray=2)  # 2 of 14 rows under no label folder
    with pytest.raises(
        BadInputError, match=r"2 of the 14 rows of bench have problems \(14\.3%.*stray-0.png: not under a label folder"
    ):
        _run(root, tmp_path / "out", max_problem_rate=0.1)
    assert not (tmp_path / "out").exists()  # refused while listing: nothing scored, nothing written
    run, _ = _run(root, None, max_problem_rate=0.2)
    assert run.results[0].metrics["count"] == 12


def test_problems_found_while_scoring_refuse_the_numbers_but_are_listed(tmp_path: Path) -> None:
    root = _folder(tmp_path / "bench", broken=2)  # 2 of 14 rows cannot be decoded: known only once read
    with pytest.raises(BadInputError, match=r"2 of the 14 rows .* no number is reported"):
        _run(root, tmp_path / "out", max_problem_rate=0.1)
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["problems.jsonl"]
    assert len((out / "problems.jsonl").read_text().splitlines()) == 2


def test_an_empty_or_oversized_dataset_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError, match="no image to evaluate"):
        _run(tmp_path / "empty", None)
    root = _folder(tmp_path / "bench")
    evaluation = EvaluationSettings(max_records=5)
    detector, _ = _detector()
    with pytest.raises(BadInputError, match=r"12 items, above evaluation.max_records=5"):
        asyncio.run(evaluate_source(detector, open_dataset(str(root), evaluation.dataset, "test"), evaluation,
                                    DetectorSettings(), progress=False))  # fmt: skip
