"""Every command the README lists is registered, and loading the parser stays light (no torch, no vLLM)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from zoomguard.cli import build_parser

README = Path(__file__).resolve().parents[2] / "README.md"


def _registered() -> set[str]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    return set(sub.choices)  # type: ignore[union-attr]


def test_every_readme_command_is_registered() -> None:
    table = README.read_text().split("## Commands", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `zoomguard ([a-z-]+)", table, re.MULTILINE))
    assert {"detect", "run", "review", "collect", "annotate", "train", "eval", "promote", "retrain"} <= listed
    assert listed == _registered()


def test_building_the_parser_imports_no_heavy_packages() -> None:
    code = "import sys; from zoomguard.cli import build_parser; build_parser(); " + (
        "print(sorted(m for m in ('torch', 'vllm', 'trl', 'pyarrow', 'peft') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
