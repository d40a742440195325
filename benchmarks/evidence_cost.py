"""What the cascade's evidence stage costs per upload, unmarked and marked, at 1 and 12 megapixels:

    .venv/bin/python benchmarks/evidence_cost.py [READS] [ROUNDS]

The same measure `zoomguard bench` reports (zoomguard/bench/evidence.py): the worker's own readers on default
settings, the bytes stage (sniffs, then C2PA, XMP and generator metadata) and the pixel stage (invisible
watermarks, on the decoded upload) timed apart. Each round reads every file READS times, in an order that
rotates between rounds; a cell gives the median and p99 over every read, and the min-max of the round medians.
"""

from __future__ import annotations

import sys

from zoomguard.bench.evidence import cost_markdown, measure_evidence_cost

if __name__ == "__main__":
    reads = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    print(cost_markdown(measure_evidence_cost(reads, rounds)))
