"""The dataset's fingerprint: which images, how large, with which labels, as one sha256.

Cheap (no image is hashed) and independent of the order a reader lists the items in: one line per item,
`ID<TAB>LABEL<TAB>SIZE` (SIZE: the bytes read, `-` when unreadable), sorted, joined with newlines and hashed,
so `LC_ALL=C sort lines.tsv | sha256sum` gives the same digest. Rows reported as problems while listing have no
line (the report counts them); two runs on the same files and labels get the same fingerprint.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def fingerprint_line(item_id: str, label: str, size: int | None) -> str:
    clean = item_id.replace("\t", " ").replace("\n", " ")
    return f"{clean}\t{label}\t{'-' if size is None else size}"


def fingerprint(lines: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for line in sorted(lines):
        digest.update(line.encode() + b"\n")
    return f"sha256:{digest.hexdigest()}"
