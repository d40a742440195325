"""`zoomguard run`: the moderation worker, until SIGTERM or SIGINT (then drain, commit, exit 0)."""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import TYPE_CHECKING, Any

from zoomguard.commands.common import Command, quiet_engine_logs
from zoomguard.commands.flags import (
    config_flag,
    family_flag,
    kafka_flags,
    log_flags,
    model_flag,
    server_flag,
    settings_from,
)

if TYPE_CHECKING:
    from zoomguard.app.config import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    kafka_flags(parser, group=True)
    model_flag(parser)
    server_flag(parser)
    family_flag(parser)
    config_flag(parser)
    log_flags(parser)


def run(args: argparse.Namespace) -> int:
    from zoomguard.telemetry.logs import configure_logging

    quiet_engine_logs()
    settings = settings_from(args)
    configure_logging(settings.telemetry.log_level, settings.telemetry.log_json)
    return asyncio.run(run_worker(settings))


COMMAND = Command("run", "the Kafka moderation worker (until SIGTERM: drain, commit, exit 0)", add_arguments, run)


async def run_worker(settings: Settings) -> int:
    from zoomguard.app.worker_service import run_service

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _request_stop, stop, signum)
    stats = await run_service(settings, stop)
    _log().info("exiting", handled=stats.handled, outcomes=dict(stats.outcomes))
    return 0


def _request_stop(stop: asyncio.Event, signum: int) -> None:
    _log().info("stop requested", signal=signal.Signals(signum).name)
    stop.set()


def _log() -> Any:
    import structlog  # here, not at import: building the CLI's parser imports this module

    return structlog.get_logger("zoomguard.run")
