"""Decode every file of a folder of hostile images (e.g. Pillow's own Tests/images) the way the worker does.

Reports how many decoded and how many were refused by kind, the slowest files, and anything that escaped as
something other than a BadInputError (a crash of the worker's decode path: must be zero). Each file is decoded
and thumbnailed with the default limits; a file taking longer than --slow-s is listed. With --mutate N, each
file is also decoded N more times with a few bytes of its first KiB replaced (headers and tags, where the
fuzzer found Pillow's TypeErrors), seeded, so a run can be repeated.

    .venv/bin/python benchmarks/decode_corpus.py /path/to/Pillow/Tests/images [--mutate 4] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path

from zoomguard.errors import BadInputError
from zoomguard.media.images import decode_image, decode_thumbnail
from zoomguard.telemetry.logs import configure_logging


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--json", type=Path, help="write the full result here")
    parser.add_argument("--slow-s", type=float, default=1.0, help="list files that take longer than this")
    parser.add_argument("--mutate", type=int, default=0, help="mutated copies decoded per file")
    parser.add_argument("--seed", type=int, default=0, help="seed of the mutations")
    args = parser.parse_args()
    configure_logging("ERROR", json=True)  # library warnings are log lines; keep the report readable
    outcomes: Counter[str] = Counter()
    escaped: list[dict[str, str]] = []
    timings: list[tuple[float, str]] = []
    files = sorted(p for p in args.folder.rglob("*") if p.is_file())
    rng = random.Random(args.seed)
    cases = [(path.name, data) for path in files for data in _variants(path.read_bytes(), args.mutate, rng)]
    for name, data in cases:
        started = time.perf_counter()
        try:
            decode_image(data)
            decode_thumbnail(data, 256)
            outcomes["decoded"] += 1
        except BadInputError as exc:
            outcomes[exc.kind] += 1
        except Exception as exc:  # what the issue is about: nothing may escape as a non-BadInputError
            outcomes["escaped"] += 1
            escaped.append({"file": name, "error": f"{type(exc).__name__}: {exc}"[:300]})
        timings.append((time.perf_counter() - started, name))
    timings.sort(reverse=True)
    result = {
        "files": len(files),
        "decodes": len(cases),
        "outcomes": dict(outcomes),
        "escaped": escaped,
        "slowest_s": [[round(t, 3), name] for t, name in timings[:5]],
        "over_slow_s": [name for t, name in timings if t > args.slow_s],
        "total_s": round(sum(t for t, _ in timings), 2),
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "escaped"}, indent=2))
    for item in escaped:
        print(f"ESCAPED {item['file']}: {item['error']}", file=sys.stderr)
    return 1 if escaped else 0


def _variants(data: bytes, mutations: int, rng: random.Random) -> list[bytes]:
    out = [data]
    for _ in range(mutations):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            if mutated:
                mutated[rng.randrange(min(len(mutated), 1024))] = rng.randrange(256)
        out.append(bytes(mutated))
    return out


if __name__ == "__main__":
    sys.exit(main())
