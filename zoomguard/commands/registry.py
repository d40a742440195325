"""Every `zoomguard` command, in `zoomguard --help` order: the one list the CLI's parser is built from.

A command is a module in this package that defines `COMMAND = Command(name, help, add_arguments, run)`;
adding one means importing it here and listing it below.
"""

from __future__ import annotations

from zoomguard.commands import (
    annotate,
    bank,
    bench,
    broker,
    collect,
    demo,
    detect,
    evaluate,
    promote,
    retrain,
    review,
    run,
    settings,
    tiny_model,
    train,
)
from zoomguard.commands.common import Command

COMMANDS: tuple[Command, ...] = (
    detect.COMMAND,
    run.COMMAND,
    broker.COMMAND,
    demo.COMMAND,
    bench.COMMAND,
    settings.COMMAND,
    tiny_model.COMMAND,
    review.COMMAND,
    bank.COMMAND,
    collect.COMMAND,
    annotate.COMMAND,
    train.COMMAND,
    evaluate.COMMAND,
    promote.COMMAND,
    retrain.COMMAND,
)
