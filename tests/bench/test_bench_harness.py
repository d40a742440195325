"""The benchmark harness itself runs and reports every key (tiny counts; no speed is asserted here:
speed targets live in the harness's own report, never in timed tests)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from PIL import Image

from zoomguard.bench.naive import Replay
from zoomguard.bench.options import BenchOptions
from zoomguard.bench.report import TARGETS, markdown
from zoomguard.bench.runs import cores_busy, percentiles, throughput
from zoomguard.commands.bench import _TINY_DETECTOR, _TINY_ENGINE, run_bench
from zoomguard.detector.geometry import Box
from zoomguard.schemas.detection import Detection, FirstPass, ImageInfo, ModelInfo, Region, Timings, Usage

REPORT_KEYS = {
    "engine_ceiling_ips", "pipeline_ips", "sequential_ips", "naive_ips", "pipeline_over_ceiling",
    "pipeline_over_naive", "prefix_reuse", "memory_growth", "latency_ms", "machine", "model", "settings",
}  # fmt: skip


def test_cores_busy_counts_processes_that_started_in_between() -> None:
    before = {1: 10.0, 2: 5.0}
    after = {1: 12.0, 2: 6.0, 3: 1.0}  # 3 started during the run
    assert cores_busy(before, after, wall_s=2.0) == pytest.approx(2.0)
    assert cores_busy(before, after, wall_s=0.0) == 0.0


def test_throughput_and_percentiles_are_computed_as_documented() -> None:
    assert throughput(9.0, [10.0, 10.5, 11.0, 13.0]) == (1.0, 4.0)  # 4 results from 9 s to 13 s
    assert throughput(5.0, []) == (0.0, 0.0)
    cuts = percentiles([float(v) for v in range(1, 101)])
    assert cuts["p50"] == 50.5 and cuts["p99"] == 99.0  # inclusive method: 1 + 0.99 * 99 = 99.01, one decimal


def _detection(examined: bool) -> Detection:
    return Detection(
        decision="uncertain",
        p_ai=0.5,
        reason="low_confidence",
        regions=[Region(box=(10, 20, 110, 120), box_norm=(0.1, 0.2, 0.9, 0.8), finding="odd hand")],
        explanation="",
        first_pass=FirstPass(verdict="real", explanation="", p_ai=0.4),
        examined=examined,
        crops=1 if examined else 0,
        model=ModelInfo(name="m", version="v1", family="qwen2_5_vl"),
        image=ImageInfo(sha256="ab" * 32, width=400, height=500, format="PNG"),
        timings_ms=Timings(),
        usage=Usage(locate_completion_tokens=120, examine_completion_tokens=40 if examined else 0),
    )


def test_the_naive_baseline_replays_the_engines_work_per_image() -> None:
    replay = Replay.of(_detection(examined=True))
    assert (replay.locate_tokens, replay.examine_tokens) == (120, 40)
    assert replay.regions == ((Box(10, 20, 110, 120), "odd hand"),)  # the same boxes: the same crops
    assert Replay.of(_detection(examined=False)).examine_tokens == 0  # no Query 2 where the engine ran none


def test_a_small_bench_run_writes_every_report_key(tmp_path: Path, tiny_model: Path) -> None:
    options = BenchOptions(
        model=str(tiny_model), images=6, sequential_images=3, naive_images=2, paced_images=4, image_size=(320, 240),
        prepost_megapixels=(0.3,), prepost_repeats=1, memory_backlog=2, max_in_flight=8, marked_share=0.34,
        copy_share=0.34, repeats=2, evidence_megapixels=(1.0,), evidence_reads=2, evidence_rounds=1,
        known_entries=5000, busy_wait_s=0.0, regions_per_image=1.95,
        engine_overrides=dict(_TINY_ENGINE), detector_overrides=dict(_TINY_DETECTOR),
    )  # fmt: skip
    out = tmp_path / "report.json"
    report = asyncio.run(run_bench(options, out))
    assert set(report) >= REPORT_KEYS
    assert json.loads(out.read_text()) == report
    assert set(report["latency_ms"]) == {"p50", "p95", "p99"}
    # every stage ran twice, and the headline figure is the median of its runs
    assert set(report["stages"]) == {"ceiling", "naive", "pipeline", "sequential", "paced", "cached", "marked", "mixed"}
    for stage, row in report["stages"].items():
        assert len(row["runs"]) == 2 and row["min"] <= row["median"] <= row["max"] and row["min"] > 0, stage
    for key, stage in (("engine_ceiling_ips", "ceiling"), ("pipeline_ips", "pipeline"), ("naive_ips", "naive"),
                       ("cache_ips", "cached"), ("marked_ips", "marked"), ("mixed_ips", "mixed")):  # fmt: skip
        assert report[key] == report["stages"][stage]["median"], key
    assert report["pipeline_over_ceiling"] == pytest.approx(
        report["pipeline_ips"] / report["engine_ceiling_ips"], rel=0.01
    )
    assert report["ratios"]["pipeline_over_ceiling"]["min"] <= report["ratios"]["pipeline_over_ceiling"]["max"]
    # no stage found an earlier stage's images in the engine's cache
    assert report["cold_stages"] is True
    assert all(hits == [0, 0] for stage, row in report["stages"].items() if stage not in ("naive", "cached")
               for hits in [row["locate_cache_hits"]])  # fmt: skip
    # the workload: 1.95 regions per image from the grid grammar, each cropped
    assert report["workload"]["regions_per_image"] == pytest.approx(1.95, abs=0.25)
    assert report["crops_per_image"] == report["workload"]["regions_per_image"]
    assert report["crops_off_workload"] <= 0.15
    assert report["prefix_reuse"] > 0.5  # Query 2 is served from the cache (it can exceed 1: answers are cached too)
    assert report["memory_growth"] > 0
    # vLLM's engine core and model worker are child processes: counting only this one would give ~0.3
    assert 0.8 < report["ceiling_cores_busy"] <= (os.cpu_count() or 1) + 0.5
    assert report["naive"]["device"] == "cpu" and report["naive"]["dtype"] == "float32"
    assert report["naive"]["torch_threads"] >= 1
    assert 0.0 < report["examined_share"] <= 1.0
    assert report["tokens_per_image"]["locate"] > 0
    # the mixed stream: marks decided by evidence, copies of known images by the bank, the rest by the model
    for decided, extra in zip(report["stages"]["mixed"]["decided_by"], report["stages"]["mixed"]["extra"], strict=True):
        assert decided.get("evidence", 0) == extra["marked"] > 0
        assert decided.get("known_content", 0) == extra["copies"] > 0
        assert sum(decided.values()) == 6
    assert [row["format"] for row in report["prepost"]] == ["JPEG", "PNG"]
    # every marked kind is found by the stage that reads it, and the unmarked files carry nothing
    found = {row["file"]: row["found"] for row in report["evidence_cost"]}
    assert found == {
        "1 MP JPEG, unmarked": [], "1 MP PNG, unmarked": [], "1 MP JPEG, C2PA signed": ["c2pa"],
        "1 MP JPEG, XMP source type": ["xmp"], "1 MP PNG, A1111 parameters": ["generator_metadata"],
        "1 MP PNG, SDXL watermark": ["watermark"],
    }  # fmt: skip
    assert all(row[stage]["p99_ms"] >= row[stage]["p50_ms"] > 0 for row in report["evidence_cost"]
               for stage in ("bytes_stage", "pixel_stage"))  # fmt: skip
    assert report["known_index"]["entries"] == 5000
    assert report["known_index"]["near_matched"] == report["known_index"]["near_queries"] > 0
    arithmetic = report["arithmetic"]
    assert arithmetic["peak_flops"] > 0 and arithmetic["limit_ips"] > report["pipeline_ips"]
    assert 0 < arithmetic["share_of_limit"] < 1
    table = out.with_suffix(".md").read_text()
    judged = [key for key in TARGETS if key in report["ratios"] or key in report]
    assert table.count("met (") + table.count("MISSED (") == len(judged)  # each target judged once
    assert "pipeline / ceiling" in table and "prefix reuse" in table and markdown(report) in table
    assert "Arithmetic limit" in table
    assert Image.open(out.with_suffix(".png")).size == (640, 360)
