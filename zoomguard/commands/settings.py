"""`zoomguard settings`: the configuration reference (Markdown), generated from the settings models."""

from __future__ import annotations

import argparse

from zoomguard.commands.common import Command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No flags: the reference is the same wherever it is printed."""


def run(args: argparse.Namespace) -> int:
    from zoomguard.app.settings_reference import settings_reference

    print(settings_reference())
    return 0


COMMAND = Command(
    "settings", "print every setting with its environment variable and default (Markdown)", add_arguments, run
)
