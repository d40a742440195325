"""`zoomguard tiny-model DIR`: a tiny random-weight Qwen2.5-VL checkpoint for tests, the demo and benchmarks."""

from __future__ import annotations

import argparse
from pathlib import Path

from zoomguard.commands.common import Command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from zoomguard.detector.tiny_model import TinyModelSpec, build_tiny_model

    print(build_tiny_model(args.out_dir, TinyModelSpec(seed=args.seed)))
    return 0


COMMAND = Command("tiny-model", "write a tiny random-weight Qwen2.5-VL checkpoint (offline)", add_arguments, run)
