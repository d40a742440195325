"""kafka-python checks every record batch with CRC32C; its pure-Python fallback costs about 25 ms per 100 KB record
(an upload sent inline), so the install must bring the C implementation, and it must agree with the fallback."""

from __future__ import annotations

import os

from kafka.record import util
from kafka.record._crc32c import crc as pure_python_crc32c


def test_record_checksums_are_computed_in_c_and_agree_with_the_fallback() -> None:
    assert util.crc32c_c is not None, "install kafka-python[crc32c]: without it every batch is checksummed in Python"
    data = os.urandom(100_000)
    assert util.calc_crc32c(memoryview(data)) == pure_python_crc32c(data)
