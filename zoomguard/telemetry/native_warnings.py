"""libtiff's messages go to the logs, not straight to stderr.

Why: a fuzzed or damaged TIFF makes libtiff print lines such as "tempfile.tif: Using code not yet in table." on
stderr for every such upload: unstructured, with no event id, interleaved with the JSON log lines. libtiff
reports through two process-wide C handlers (warnings and errors); they are replaced, through ctypes, by one
that logs to "zoomguard.native". Pillow still raises its own exception for the image, so nothing else changes.
Where libtiff or the C library cannot be found (not Linux, another Pillow build), libtiff keeps printing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from typing import Any

log = logging.getLogger("zoomguard.native")

_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p)
_installed: list[Any] = []  # keeps the callbacks alive as long as libtiff may call them


def route_libtiff_messages() -> bool:
    """Replace libtiff's warning and error handlers with logging ones; True when done (idempotent)."""
    if _installed:
        return True
    libtiff = _loaded_libtiff()
    libc_name = ctypes.util.find_library("c")
    if libtiff is None or libc_name is None:
        return False
    try:
        vsnprintf = ctypes.CDLL(libc_name).vsnprintf
        setters = [(libtiff.TIFFSetWarningHandler, logging.WARNING), (libtiff.TIFFSetErrorHandler, logging.WARNING)]
    except (OSError, AttributeError):
        return False
    vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]
    vsnprintf.restype = ctypes.c_int
    for setter, level in setters:
        callback = _HANDLER(_handler(vsnprintf, level))
        setter.argtypes = [_HANDLER]
        setter.restype = ctypes.c_void_p
        setter(callback)
        _installed.append(callback)
    return True


def _handler(vsnprintf: Any, level: int) -> Any:
    def handle(module: bytes | None, fmt: bytes | None, args: int | None) -> None:
        buffer = ctypes.create_string_buffer(1024)
        vsnprintf(buffer, len(buffer), fmt or b"", args)
        where = (module or b"libtiff").decode(errors="replace")
        log.log(level, "libtiff: %s: %s", where, buffer.value.decode(errors="replace"))

    return handle


def _loaded_libtiff() -> ctypes.CDLL | None:
    """The libtiff Pillow itself loaded (its wheel bundles one): the handlers must be set on that copy."""
    try:
        import PIL._imaging  # noqa: F401  (loads libtiff)

        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "libtiff" in line and "/" in line}
    except (ImportError, OSError):
        return None
    for path in sorted(paths):
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None
