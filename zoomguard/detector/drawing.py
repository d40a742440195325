"""Draw a detection's boxes and findings on the image, for reviewers and the demo gallery."""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

from zoomguard.schemas.detection import Detection

_COLOURS = {"ai_generated": (220, 40, 40), "real": (40, 160, 60), "uncertain": (230, 150, 20)}


def annotate(image: Image.Image, detection: Detection) -> Image.Image:
    """A copy of `image` (original pixels) with each region boxed and numbered, and the decision on top."""
    canvas = image.convert("RGB").copy()
    draw = ImageDraw.Draw(canvas)
    colour = _COLOURS[detection.decision]
    line = max(2, round(min(canvas.size) / 200))
    font = ImageFont.load_default(size=max(12, round(min(canvas.size) / 30)))
    for number, region in enumerate(detection.regions, 1):
        x1, y1, x2, y2 = region.box
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=line)
        _label(draw, (x1 + line, y1 + line), f"{number}. {region.finding[:40]}", colour, font)
    p_ai = "n/a" if detection.p_ai is None else f"{detection.p_ai:.2f}"
    _label(draw, (line, line), f"{detection.decision}  p_ai={p_ai}", colour, font)
    return canvas


def _label(
    draw: ImageDraw.ImageDraw,
    at: tuple[int, int],
    text: str,
    colour: tuple[int, int, int],
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
) -> None:
    left, top, right, bottom = draw.textbbox(at, text, font=font)
    draw.rectangle((left - 2, top - 2, right + 2, bottom + 2), fill=colour)
    draw.text(at, text, fill=(255, 255, 255), font=font)
