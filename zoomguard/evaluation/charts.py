"""The evaluation's two pictures, drawn with Pillow (no plotting library needed on a training box).

- Reliability diagram: per P(ai) bin, the observed share of ai_generated (bars) against the diagonal
  of perfect calibration, with each bin's count; the gap between bar and diagonal is what ECE sums.
- Confusion matrix: true label (rows) by decision (columns, abstentions and errors included).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from zoomguard.evaluation.scores import DECISION_COLUMNS, LABEL_ROWS, ReliabilityBin

RELIABILITY_SIZE = (640, 640)
CONFUSION_SIZE = (720, 360)
_BACKGROUND = (255, 255, 255)
_INK = (30, 30, 30)
_GRID = (215, 215, 215)
_BAR = (70, 120, 200)
_GAP = (230, 110, 90)

Font = ImageFont.ImageFont | ImageFont.FreeTypeFont


def _font(size: int) -> Font:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def reliability_diagram(bins: Sequence[ReliabilityBin], path: Path, title: str = "Reliability of P(ai)") -> Path:
    width, height = RELIABILITY_SIZE
    left, top, right, bottom = 70, 50, width - 30, height - 70
    image = Image.new("RGB", RELIABILITY_SIZE, _BACKGROUND)
    draw = ImageDraw.Draw(image)
    small, normal = _font(12), _font(15)

    def to_px(x: float, y: float) -> tuple[float, float]:
        return left + x * (right - left), bottom - y * (bottom - top)

    for tick in range(11):
        v = tick / 10
        draw.line([to_px(v, 0), to_px(v, 1)], fill=_GRID)
        draw.line([to_px(0, v), to_px(1, v)], fill=_GRID)
        draw.text((to_px(v, 0)[0] - 8, bottom + 6), f"{v:.1f}", fill=_INK, font=small)
        draw.text((left - 34, to_px(0, v)[1] - 7), f"{v:.1f}", fill=_INK, font=small)
    for b in bins:
        if not b.count or b.fraction_ai is None or b.mean_p_ai is None:
            continue
        x0, y0 = to_px(b.lower, b.fraction_ai)
        x1, y1 = to_px(b.upper, 0)
        draw.rectangle([x0 + 2, y0, x1 - 2, y1], fill=_BAR, outline=_INK)
        mx, my = to_px(b.mean_p_ai, b.fraction_ai)
        _, cy = to_px(b.mean_p_ai, b.mean_p_ai)
        draw.line([(mx, my), (mx, cy)], fill=_GAP, width=3)  # the calibration gap at the bin's mean P(ai)
        draw.text((x0 + 4, y0 - 16), str(b.count), fill=_INK, font=small)
    draw.line([to_px(0, 0), to_px(1, 1)], fill=_INK, width=2)
    draw.rectangle([left, top, right, bottom], outline=_INK)
    draw.text((left, 6), title, fill=_INK, font=normal)
    draw.text(((left + right) / 2 - 90, height - 40), "predicted P(ai) (bins; count above)", fill=_INK, font=normal)
    draw.text((8, top - 20), "observed share of ai_generated", fill=_INK, font=small)
    return _save(image, path)


def confusion_matrix(table: Mapping[str, Mapping[str, int]], path: Path, title: str = "Confusion matrix") -> Path:
    width, height = CONFUSION_SIZE
    left, top = 150, 90
    cell_w, cell_h = (width - left - 20) / len(DECISION_COLUMNS), (height - top - 30) / len(LABEL_ROWS)
    image = Image.new("RGB", CONFUSION_SIZE, _BACKGROUND)
    draw = ImageDraw.Draw(image)
    small, normal = _font(13), _font(15)
    largest = max((table.get(r, {}).get(c, 0) for r in LABEL_ROWS for c in DECISION_COLUMNS), default=0) or 1
    draw.text((left, 14), title, fill=_INK, font=normal)
    draw.text((left, 44), "decision ->", fill=_INK, font=small)
    draw.text((10, top - 24), "label (rows)", fill=_INK, font=small)
    for j, column in enumerate(DECISION_COLUMNS):
        draw.text((left + j * cell_w + 8, top - 22), column, fill=_INK, font=small)
    for i, row in enumerate(LABEL_ROWS):
        y0 = top + i * cell_h
        draw.text((10, y0 + cell_h / 2 - 8), row, fill=_INK, font=small)
        for j, column in enumerate(DECISION_COLUMNS):
            count = table.get(row, {}).get(column, 0)
            shade = round(255 - 185 * count / largest)
            fill = (shade, shade, 255) if row == column else (255, shade, shade)
            x0 = left + j * cell_w
            draw.rectangle([x0, y0, x0 + cell_w, y0 + cell_h], fill=fill, outline=_INK)
            draw.text((x0 + cell_w / 2 - 10, y0 + cell_h / 2 - 8), str(count), fill=_INK, font=normal)
    return _save(image, path)


def _save(image: Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
    return path
