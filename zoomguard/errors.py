"""One root exception, split by fate: bad input is never retried, unavailability always is."""

from __future__ import annotations


class ZoomguardError(Exception):
    """Root of every error zoomguard raises on purpose."""

    kind = "error"


class BadInputError(ZoomguardError):
    """Input that can never be processed: it goes to the dead-letter topic with its reason."""

    kind = "bad_input"


class ImageDecodeError(BadInputError):
    """Bytes that are not a supported, intact image."""

    kind = "image_decode"


class ImageTooLargeError(BadInputError):
    """An image over the configured byte or pixel limit, or a decompression bomb."""

    kind = "image_too_large"


class UnavailableError(ZoomguardError):
    """A dependency is down or slow (engine, server, broker, URL host): retry later, never skip."""

    kind = "unavailable"


class EngineUnavailableError(UnavailableError):
    """The inference engine (in-process or server) cannot answer right now."""

    kind = "engine_unavailable"


class ConfigError(ZoomguardError):
    """Settings that cannot work together; the message says what to do instead."""

    kind = "config"
