"""Logging setup: structlog, JSON lines for machines, a readable console when a person is watching.

Secrets never reach logs: settings hold them as SecretStr, URLs are logged without query strings, and
image bytes are never logged.
"""

from __future__ import annotations

import logging
import sys

import structlog

from zoomguard.telemetry.native_warnings import route_libtiff_messages


def configure_logging(level: str = "INFO", json: bool | None = None) -> None:
    """`json=None` picks JSON unless stderr is a terminal."""
    as_json = (not sys.stderr.isatty()) if json is None else json
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    _route_stdlib_logging(renderer)


def _route_stdlib_logging(renderer: structlog.types.Processor) -> None:
    """Lines from libraries (kafka-python, Pillow, libtiff's C handlers) and Python warnings (Pillow's "corrupt
    EXIF" and the like) are rendered like our own lines, JSON included, instead of raw text on stderr."""
    logging.captureWarnings(True)
    route_libtiff_messages()
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processor=renderer,
            foreign_pre_chain=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if h.get_name() != _HANDLER_NAME] + [handler]
    if root.level == logging.NOTSET or root.level > logging.WARNING:
        root.setLevel(logging.WARNING)


_HANDLER_NAME = "zoomguard"
