"""The evaluation's two pictures, drawn with matplotlib into PNG files.

- Reliability diagram: per P(ai) bin, the observed share of ai_generated (bars) against the diagonal
  of perfect calibration, with each bin's count; the gap between bar and diagonal is what ECE sums.
- Confusion matrix: true label (rows) by decision (columns, abstentions and errors included).

Each chart is its own `Figure` on an Agg canvas: no pyplot, so no global figure state, no GUI backend and
nothing shared between threads or between an evaluation's two models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from zoomguard.evaluation.scores import DECISION_COLUMNS, LABEL_ROWS, ReliabilityBin

RELIABILITY_SIZE = (640, 640)
CONFUSION_SIZE = (720, 360)
_DPI = 100  # sizes are in pixels: figsize = size / dpi, saved without a tight bounding box
_BAR = "#4678c8"
_GAP = "#e66e5a"


def _figure(size: tuple[int, int]) -> Figure:
    figure = Figure(figsize=(size[0] / _DPI, size[1] / _DPI), dpi=_DPI)
    FigureCanvasAgg(figure)
    return figure


def reliability_diagram(bins: Sequence[ReliabilityBin], path: Path, title: str = "Reliability of P(ai)") -> Path:
    figure = _figure(RELIABILITY_SIZE)
    ax = figure.subplots()
    # (left edge, width, count, mean P(ai), share of ai_generated) of the bins that have records
    filled = [
        (b.lower, b.upper - b.lower, b.count, b.mean_p_ai, b.fraction_ai)
        for b in bins
        if b.count and b.mean_p_ai is not None and b.fraction_ai is not None
    ]
    left, width, count, mean, share = ([row[k] for row in filled] for k in range(5))
    ax.bar(left, share, width=width, align="edge", color=_BAR, edgecolor="black", linewidth=0.8,
           label="observed share of ai_generated")  # fmt: skip
    for x, n, y in zip(left, count, share, strict=True):
        ax.annotate(str(n), (x, y), xytext=(2, 3), textcoords="offset points", ha="left", fontsize=8)
    if filled:  # the calibration gap at each bin's mean P(ai)
        ax.vlines(mean, share, mean, colors=_GAP, linewidth=2.5, label="gap at the bin's mean P(ai)")
    ax.plot([0, 1], [0, 1], color="black", linewidth=1.5, label="perfect calibration")
    ticks = np.linspace(0.0, 1.0, 11)
    ax.set(xlim=(0, 1), ylim=(0, 1.05), xticks=ticks, yticks=ticks, title=title)
    ax.set_xlabel("predicted P(ai) (bins; count above)")
    ax.set_ylabel("observed share of ai_generated")
    ax.grid(color="#d7d7d7", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncols=3, fontsize=8, frameon=False)
    figure.tight_layout()
    return _save(figure, path)


def confusion_matrix(table: Mapping[str, Mapping[str, int]], path: Path, title: str = "Confusion matrix") -> Path:
    figure = _figure(CONFUSION_SIZE)
    ax = figure.subplots()
    counts = np.array([[table.get(r, {}).get(c, 0) for c in DECISION_COLUMNS] for r in LABEL_ROWS], dtype=float)
    shade = counts / (counts.max() or 1.0)
    # right answers in blues, every other cell (wrong, abstained, failed) in reds; darker = more records
    correct = np.array([[r == c for c in DECISION_COLUMNS] for r in LABEL_ROWS])
    blues, reds = colormaps["Blues"], colormaps["Reds"]
    colours = np.where(correct[..., None], blues(0.05 + 0.7 * shade), reds(0.05 + 0.7 * shade))
    ax.imshow(colours, aspect="auto")
    for i, _row in enumerate(LABEL_ROWS):
        for j, _column in enumerate(DECISION_COLUMNS):
            ink = "white" if shade[i, j] > 0.6 else "black"
            ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", fontsize=13, color=ink)
    ax.set_xticks(range(len(DECISION_COLUMNS)), DECISION_COLUMNS)
    ax.set_yticks(range(len(LABEL_ROWS)), LABEL_ROWS)
    ax.xaxis.tick_top()
    ax.xaxis.set_label_position("top")
    ax.set_xlabel("decision")
    ax.set_ylabel("label")
    ax.set_xticks(np.arange(len(DECISION_COLUMNS) + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(len(LABEL_ROWS) + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="black", linewidth=1)
    ax.tick_params(which="minor", length=0)
    figure.suptitle(title, fontsize=12)
    figure.tight_layout()
    return _save(figure, path)


def _save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=_DPI)
    return path
