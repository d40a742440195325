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
    assert "VERDICTS (10)" in out  # 6 images + 3 marked ones + the repost
    for marked in ("mark-c2pa", "mark-xmp", "mark-a1111"):  # decided by their own bytes: no model call, no p_ai
        row = next(line.split() for line in out.splitlines() if line.strip().startswith(marked))
        assert row[1:4] == ["ai_generated", "evidence", "-"], row
    assert "EVIDENCE IN THE UPLOADS' BYTES (3)" in out
    assert "c2pa" in out and "xmp" in out and "generator_metadata" in out
    assert "DEAD LETTERS (4)" in out
    for kind in ("image_decode", "forbidden_url", "fetch_failed", "invalid_event"):
        assert kind in out
    assert "REVIEW REQUESTS" in out
    assert "events handled" in result.stderr  # progress
    gallery = tmp_path / "gallery"
    assert (gallery / "index.html").read_text().count("<figure>") == 10
    assert len(list(gallery.glob("*.png"))) == 10
