"""`zoomguard detect` end to end on the in-process engine: JSON lines in input order, errors, annotations."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

from tests.unit.test_hostile_images import retyped_tiff_strip_offsets, scan_bomb
from zoomguard.samples import write_samples
from zoomguard.schemas.detection import Timings


def test_detect_json_in_order_with_errors_and_annotations(tmp_path: Path, tiny_model: Path) -> None:
    images = write_samples(tmp_path / "in", 5, seed=77, size=(400, 300))
    broken = tmp_path / "in" / "broken.jpg"
    broken.write_bytes(images[0].read_bytes()[:200])  # a truncated JPEG
    fuzzed = tmp_path / "in" / "fuzzed.tif"
    fuzzed.write_bytes(retyped_tiff_strip_offsets())  # Pillow raises TypeError on it
    bomb = tmp_path / "in" / "bomb.jpg"
    bomb.write_bytes(scan_bomb(20_000))  # hours of CPU if decoded
    inputs = [images[0], broken, fuzzed, bomb, *images[1:]]
    config = tmp_path / "tiny.toml"
    config.write_text(
        '[engine]\ndtype = "float32"\nenforce_eager = true\nmax_model_len = 4096\n'
        "[detector]\nmax_pixels = 50176\nmin_regions = 1\n[detector.crops]\nmax_crops = 3\n"
    )
    out = tmp_path / "annotated"
    result = subprocess.run(
        [sys.executable, "-m", "zoomguard.cli", "detect", *map(str, inputs), "--model", str(tiny_model),
         "--config", str(config), "--json", "--annotate", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-3000:]
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["input"] for line in lines] == [str(p) for p in inputs]
    assert lines[1]["error"]["kind"] == "image_decode" and "schema_version" in lines[1]
    assert lines[2]["error"]["kind"] == "image_decode" and "TypeError" in lines[2]["error"]["message"]
    assert lines[3]["error"]["kind"] == "image_too_large" and "max_jpeg_scans" in lines[3]["error"]["message"]
    for line in lines[:1] + lines[4:]:
        assert line["schema_version"] == 1 and line["decision"] in ("ai_generated", "real", "uncertain")
        assert {"sha256", "width", "height"} <= set(line["image"]) and line["model"]["version"].startswith("sha256:")
        assert set(line["first_pass"]) == {"verdict", "explanation", "p_ai"}
        assert set(Timings.model_fields) == set(line["timings_ms"]) and line["timings_ms"]["locate_ms"] > 0
        assert line["decision_source"] == "model" and line["evidence"] == []  # generated samples carry no marks
    assert "detect" in result.stderr  # the progress bar
    annotated = sorted(out.glob("*.png"))
    assert len(annotated) == 5
    assert Image.open(annotated[0]).size == (400, 300)


def test_detect_table_output_and_exit_zero(tmp_path: Path, tiny_model: Path) -> None:
    images = write_samples(tmp_path / "in", 2, seed=78, size=(200, 150))
    result = subprocess.run(
        [sys.executable, "-m", "zoomguard.cli", "detect", *map(str, images), "--model", str(tiny_model),
         "--no-progress"],
        capture_output=True, text=True, timeout=600,
        env={**__import__("os").environ, "ZOOMGUARD_ENGINE__DTYPE": "float32", "ZOOMGUARD_ENGINE__ENFORCE_EAGER": "true",
             "ZOOMGUARD_ENGINE__MAX_MODEL_LEN": "4096", "ZOOMGUARD_DETECTOR__MAX_PIXELS": "50176"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    header, *rows = result.stdout.splitlines()
    assert header.split()[:5] == ["input", "decision", "by", "p_ai", "regions"]
    assert [row.split()[0] for row in rows] == [p.name for p in images]
    assert [row.split()[2] for row in rows] == ["model", "model"]  # unmarked samples: the model decided


def test_bad_settings_exit_2_with_a_message(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "zoomguard.cli", "detect", "x.png", "--model", "m", "--family", "llava"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "unknown model family" in result.stderr
