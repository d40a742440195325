"""What every command module shares: the `Command` record the registry lists, and keeping stdout clean."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    """One `zoomguard` subcommand.

    `add_arguments` runs on every invocation (all parsers are built to parse one command line), so it and
    its module import nothing heavy; `run` imports what it needs and returns the exit status.
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def quiet_engine_logs() -> None:
    """vLLM logs to stdout by default, which would corrupt JSON output: send its logs to stderr."""
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
