"""The bench's honesty checks as pure logic: spread and ratios, the workload grammar, fresh images, the quiet check."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from pydantic import TypeAdapter

from zoomguard.bench.images import FreshImages
from zoomguard.bench.quiet import QuietCheck, other_cores_busy
from zoomguard.bench.spread import above_bound, ratio, summary
from zoomguard.bench.workload import PAPER_REGIONS, grid_cells, locate_schema_with_regions, regions_for
from zoomguard.commands.bench import regions_per_image
from zoomguard.detector.crops import plan_crops
from zoomguard.detector.geometry import Box, iou
from zoomguard.detector.settings import CropSettings
from zoomguard.errors import ConfigError
from zoomguard.schemas.answers import LocateAnswer, response_schema


def test_summary_gives_median_and_relative_spread() -> None:
    row = summary([2.0, 4.0, 3.0])
    assert (row["median"], row["min"], row["max"]) == (3.0, 2.0, 4.0)
    assert row["spread"] == pytest.approx(2.0 / 3.0, abs=1e-3)
    assert summary([])["median"] == 0.0


def test_ratio_is_of_medians_with_the_range_of_same_repeat_ratios() -> None:
    value = ratio([10.0, 12.0, 30.0], [5.0, 6.0, 5.0])  # the third repeat's pipeline ran alone on a quiet machine
    assert value["median_ratio"] == pytest.approx(12.0 / 5.0)
    assert (value["min"], value["max"]) == (2.0, 6.0)


def test_a_pipeline_above_its_ceiling_beyond_the_noise_is_flagged() -> None:
    assert above_bound([9.4, 9.5, 9.3], [6.6, 6.7, 6.7]) == pytest.approx(9.4 / 6.7 - 1, abs=1e-3)
    assert above_bound([6.8, 6.6, 6.9], [6.5, 6.9, 6.7]) is None  # within the two spreads: noise, not an error
    assert above_bound([5.0, 5.1], [6.0, 6.1]) is None


@pytest.mark.parametrize("mean", [1.95, 3.58, 2.0, 0.5, 0.0])
def test_region_counts_average_to_the_target(mean: float) -> None:
    counts = [regions_for(i, mean) for i in range(1000)]
    assert set(counts) <= {int(mean), int(mean) + 1}
    assert sum(counts) / 1000 == pytest.approx(mean, abs=0.002)


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 9])
def test_grid_cells_are_disjoint_and_small_enough_to_crop(count: int) -> None:
    cells = [Box(*cell) for cell in grid_cells(count, 252, 196)]
    assert len(cells) == count
    assert all(cell.area <= 252 * 196 / 4 for cell in cells)  # the crop planner skips regions over half
    assert all(iou(a, b) == 0 for i, a in enumerate(cells) for b in cells[i + 1 :])


def test_the_workload_grammar_admits_only_usable_boxes_and_the_crops_follow() -> None:
    base = response_schema(LocateAnswer, max_regions=4, explanation_max_chars=96, finding_max_chars=24,
                           coordinate_max=3000, charset="ascii")  # fmt: skip
    schema = locate_schema_with_regions(base, 3, (252, 196))
    regions = schema["properties"]["regions"]
    assert (regions["minItems"], regions["maxItems"], regions["items"]) == (3, 3, False)
    assert base["properties"]["regions"]["items"] is not False  # the serving schema is left alone
    boxes = []
    for slot in regions["prefixItems"]:
        # the smallest and largest boxes the grammar allows in this slot
        corners = slot["properties"]["bbox_2d"]["prefixItems"]
        lows, highs = [c["minimum"] for c in corners], [c["maximum"] for c in corners]
        small = Box(highs[0], highs[1], lows[2], lows[3])
        assert small.width >= 40 and small.height >= 30  # at least half the cell: never degenerate
        boxes.append(Box(lows[0], lows[1], highs[2], highs[3]))
    plans = plan_crops(boxes, 252, 196, CropSettings(max_crops=4))
    assert len(plans) == 3  # none merged, none too large: one crop per region
    answer = {"explanation": "x", "verdict": "real",
              "regions": [{"bbox_2d": [b.x1, b.y1, b.x2, b.y2], "finding": "f"} for b in boxes]}  # fmt: skip
    TypeAdapter(LocateAnswer).validate_python(answer)  # what the grammar allows, the parser takes


def test_the_regions_flag_takes_a_paper_a_number_or_the_model() -> None:
    assert regions_per_image("7b") == PAPER_REGIONS["7b"] == 1.95
    assert regions_per_image("32B") == 3.58
    assert regions_per_image("2.5") == 2.5
    assert regions_per_image("model") is None
    for bad in ("lots", "-1", "40"):
        with pytest.raises(ConfigError, match="regions-per-image"):
            regions_per_image(bad)


def test_fresh_images_never_repeat_and_a_repeat_is_refused() -> None:
    fresh = FreshImages((64, 48))
    first, second = fresh.take(5), fresh.take(5)
    assert len(set(first + second)) == 10
    fresh.seed(3)  # seeds handed to another maker are never reused
    with pytest.raises(RuntimeError, match="repeat an image"):
        fresh.claim([first[0]])


def test_the_quiet_check_sees_another_processs_load() -> None:
    # a busy loop that is not this process's child (its parent shell exits), as a neighbour's job would be
    code = "import time\nend = time.time() + 8\nwhile time.time() < end: pass"
    subprocess.run(["sh", "-c", f'"{sys.executable}" -c "{code}" >/dev/null 2>&1 &'], check=True)
    time.sleep(0.5)
    assert other_cores_busy(1.0) > 0.3
    quiet, load = QuietCheck(threshold_cores=0.3, wait_s=0.0, interval_s=0.5).wait()
    assert not quiet and load > 0.3


def test_the_naive_baseline_takes_its_torch_threads_only_while_it_runs() -> None:
    """vLLM leaves the serving process one torch thread; the baseline must not hand every later stage two."""
    import psutil
    import torch

    from zoomguard.bench.naive import NaiveModel

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as vLLM leaves the process it serves from
    try:
        naive = NaiveModel("unused-model-dir")
        with naive.own_threads():
            inside = torch.get_num_threads()
        assert inside == (psutil.cpu_count(logical=False) or 1) == naive.threads
        assert torch.get_num_threads() == 1, "the process's own count is back after the baseline"
        with pytest.raises(RuntimeError), naive.own_threads():
            raise RuntimeError("a failed baseline run")
        assert torch.get_num_threads() == 1, "restored after a failure too"
    finally:
        torch.set_num_threads(before)
