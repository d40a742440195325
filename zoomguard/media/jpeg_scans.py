"""Count the scans of a JPEG before decoding it: the defence against progressive-JPEG scan bombs.

Why: a progressive JPEG may repeat its scan header thousands of times; each scan makes the decoder pass over
every coefficient again (about 5.6 ms per scan at 7000 x 7000 here), so a 200 kB file can cost hours of CPU.
Neither Pillow nor libjpeg bound the count (libjpeg-turbo's tools offer `-maxscans` for this reason). Walking
the marker segments finds every start-of-scan without decoding a pixel: segment headers are skipped by their
length, entropy-coded data up to the next real marker (stuffed 0xFF00 and restart markers are data).
"""

from __future__ import annotations

import re

_SOI = b"\xff\xd8"
_EOI, _SOS = 0xD9, 0xDA
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})  # TEM, RST0-7, SOI: no length field
# The start of a marker inside entropy-coded data: 0xFF then anything but stuffing, a restart or more fill.
_MARKER_IN_DATA = re.compile(rb"\xff[\x01-\xcf\xd8-\xfe]")


def count_jpeg_scans(data: bytes, stop_after: int) -> int:
    """Start-of-scan markers of the primary image, counting no further than `stop_after` + 1.

    Not a JPEG (no SOI): 0. A malformed tail ends the walk; the decoder reports that, not this count."""
    if not data.startswith(_SOI):
        return 0
    size = len(data)
    pos = len(_SOI)
    scans = 0
    while pos < size:
        if data[pos] != 0xFF:  # junk between segments: libjpeg skips to the next marker, so do we
            pos = data.find(b"\xff", pos)
            if pos < 0:
                break
            continue
        while pos < size and data[pos] == 0xFF:  # fill bytes before a marker
            pos += 1
        if pos >= size:
            break
        marker = data[pos]
        pos += 1
        if marker == _EOI:
            break
        if marker in _STANDALONE or marker == 0x00:
            continue
        if pos + 2 > size:
            break
        length = int.from_bytes(data[pos : pos + 2], "big")
        if length < 2:
            break
        pos += length
        if marker == _SOS:
            scans += 1
            if scans > stop_after:
                break
            found = _MARKER_IN_DATA.search(data, pos)
            pos = found.start() if found else size
    return scans
