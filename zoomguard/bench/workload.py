"""The paper's workload on any model: Query 1 proposes as many usable regions as ZoomIn does.

Why: the random-weight tiny model writes degenerate boxes ([5, 5, 5, 5]), so Query 2 would see almost no crops,
while ZoomIn-7B proposes 1.95 regions per image and ZoomIn-32B 3.58 (the method notes), and Query 2's crops are a
large share of the real cost. The bench gets that workload with a bench-only structured-output constraint: an
engine wrapper gives each Query 1 a grammar in which region i's box must lie in cell i of a grid over the image,
at least half the cell wide and high. The boxes are then usable (inside the image, area under half of it, no two
overlapping, so none is merged away), and everything after the grammar is the serving path unchanged: parsing,
the mapping to pixels, crop planning, zoom, Query 2. The count per image alternates between the two integers
around the target, so their mean is the target.
"""

from __future__ import annotations

import copy
import math
from dataclasses import replace
from typing import Any

from zoomguard.detector.engines.base import Engine, Generation, GenerationRequest
from zoomguard.detector.families import ModelFamily

# The published regions per image (ZoomIn / LTE, the method notes): `--regions-per-image 7b|32b`.
PAPER_REGIONS = {"7b": 1.95, "32b": 3.58}


def regions_for(index: int, mean: float) -> int:
    """How many regions request `index` proposes: floor((i+1)m) - floor(im), whose running mean is `mean`."""
    return math.floor((index + 1) * mean + 1e-9) - math.floor(index * mean + 1e-9)


def grid_cells(count: int, width: int, height: int) -> list[tuple[int, int, int, int]]:
    """`count` disjoint cells (x1, y1, x2, y2) of a grid over the image, row by row; at least 2x2, so that no
    cell covers more than a quarter of the image (the crop planner skips regions over half of it)."""
    columns = max(2, math.ceil(math.sqrt(count)))
    rows = max(2, math.ceil(count / columns))
    cells = []
    for index in range(count):
        row, column = divmod(index, columns)
        x1, x2 = width * column // columns, width * (column + 1) // columns
        y1, y2 = height * row // rows, height * (row + 1) // rows
        cells.append((x1, y1, x2 - 1, y2 - 1))
    return cells


def _coordinate(low: int, high: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": low, "maximum": max(low, high)}


def cell_box_schema(cell: tuple[int, int, int, int]) -> dict[str, Any]:
    """x1, y1 in the cell's first quarter, x2, y2 in its last: a box at least half the cell on each side."""
    x1, y1, x2, y2 = cell
    qx, qy = (x2 - x1) // 4, (y2 - y1) // 4
    corners = [(x1, x1 + qx), (y1, y1 + qy), (x2 - qx, x2), (y2 - qy, y2)]
    return {
        "type": "array",
        "prefixItems": [_coordinate(low, high) for low, high in corners],
        "items": False,
        "minItems": 4,
        "maxItems": 4,
    }


def locate_schema_with_regions(schema: dict[str, Any], count: int, box_space: tuple[int, int]) -> dict[str, Any]:
    """Query 1's schema with exactly `count` regions, region i's box in grid cell i (model coordinates)."""
    out = copy.deepcopy(schema)
    regions = out["properties"]["regions"]
    item = regions["items"]
    slots = []
    for cell in grid_cells(count, *box_space):
        slot = copy.deepcopy(item)
        slot["properties"]["bbox_2d"] = cell_box_schema(cell)
        slots.append(slot)
    regions.update({"prefixItems": slots, "items": False, "minItems": count, "maxItems": count})
    return out


class WorkloadEngine:
    """Delegates to `engine`; Query 1 requests get the grid grammar, `mean` regions per image on average."""

    def __init__(self, engine: Engine, mean: float, family: ModelFamily):
        if mean < 0:
            raise ValueError("regions per image must be >= 0")
        self._engine = engine
        self._mean = mean
        self._family = family
        self._requests = 0

    def __getattr__(self, name: str) -> Any:  # start, close, queue_depth, prefix_block_size ...
        return getattr(self._engine, name)

    @property
    def model_name(self) -> str:
        return self._engine.model_name

    async def generate(self, request: GenerationRequest) -> Generation:
        if request.request_id.endswith(":locate"):
            image = request.turns[0].images[0]
            count = regions_for(self._requests, self._mean)
            self._requests += 1
            box_space = self._family.box_space_limits(image.size)
            request = replace(request, json_schema=locate_schema_with_regions(request.json_schema, count, box_space))
        return await self._engine.generate(request)
