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
