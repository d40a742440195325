"""Warnings of the image libraries reach the logs as log lines (JSON when asked), not raw text on stderr."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import warnings
from zoomguard.telemetry.logs import configure_logging
configure_logging("INFO", json=True)
warnings.warn("Metadata Warning, tag 282 had too many entries: 2, expected 1", UserWarning)
import logging
logging.getLogger("kafka.conn").warning("connection refused by %s", "broker-1")
"""


def test_python_and_library_warnings_become_json_log_lines() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True)
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 2, done.stderr
    assert all(line["level"] == "warning" and "timestamp" in line for line in lines)
    assert "tag 282 had too many entries" in lines[0]["event"]
    assert lines[1]["event"] == "connection refused by broker-1"


LIBTIFF_SCRIPT = """
import io
import numpy as np
from PIL import Image
from zoomguard.telemetry.logs import configure_logging
from zoomguard.media.images import decode_image
configure_logging("INFO", json=True)
pixels = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
buffer = io.BytesIO()
Image.fromarray(pixels).save(buffer, "TIFF", compression="tiff_lzw")
damaged = bytearray(buffer.getvalue())
for i in range(20, 400):
    damaged[i] ^= 0x5A
try:
    decode_image(bytes(damaged))
except Exception as exc:
    print(type(exc).__name__)
"""


def test_libtiff_messages_on_a_damaged_tiff_become_log_lines() -> None:
    """libtiff prints "Using code not yet in table" through its C handler; it must arrive as a JSON line."""
    done = subprocess.run(
        [sys.executable, "-c", LIBTIFF_SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "ImageDecodeError"
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]  # every line is JSON
    assert any("libtiff" in line["event"] and "not yet in table" in line["event"] for line in lines), done.stderr
