"""`zoomguard demo` (what `make demo` runs): exits 0, prints every route, writes the gallery."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_demo_runs_the_whole_pipeline(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "zoomguard.cli", "demo", "--out", str(tmp_path), "--inline", "4", "--by-url", "2"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    out = result.stdout
    assert "VERDICTS (12)" in out  # 6 images + 4 marked ones + a copy of a known image + the repost
    table = out.split("VERDICTS (12)", 1)[1].split("REVIEW REQUESTS", 1)[0]
    rows = {line.split()[0]: line.split() for line in table.splitlines()[2:] if line.strip()}
    for marked in ("mark-c2pa", "mark-xmp", "mark-a1111", "mark-sdxl"):  # decided by their marks: no model, no p_ai
        assert rows[marked][1:4] == ["ai_generated", "evidence", "-"], rows[marked]
    # a reviewer decided the original before the demo: its smaller JPEG copy is decided by the bank
    assert rows["demo-viral-copy"][1:4] == ["ai_generated", "known_content", "-"], rows["demo-viral-copy"]
    assert "EVIDENCE: MARKS IN THE UPLOADS, KNOWN CONTENT (5)" in out
    for kind in ("c2pa", "xmp", "generator_metadata", "watermark", "known_content"):
        assert kind in out
    assert "DEAD LETTERS (4)" in out
    for kind in ("image_decode", "forbidden_url", "fetch_failed", "invalid_event"):
        assert kind in out
    assert "REVIEW REQUESTS" in out
    assert "events handled" in result.stderr  # progress
    gallery = tmp_path / "gallery"
    assert (gallery / "index.html").read_text().count("<figure>") == 12
    assert len(list(gallery.glob("*.png"))) == 12
