"""Generated sample images for the demo, tests and benchmarks: no downloads, deterministic per seed."""

from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

_FORMATS = (("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"))


@dataclass(frozen=True)
class Sample:
    name: str
    data: bytes
    format: str


def make_image(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A scene of gradients, shapes and text: enough structure for a model to propose regions on."""
    rng = random.Random(seed)
    width, height = size
    top = tuple(rng.randrange(256) for _ in range(3))
    bottom = tuple(rng.randrange(256) for _ in range(3))
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    for y in range(height):
        t = y / max(1, height - 1)
        draw.line([(0, y), (width, y)], fill=tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))
    for _ in range(rng.randint(3, 8)):
        x1, y1 = rng.randrange(width), rng.randrange(height)
        x2, y2 = x1 + rng.randint(10, width // 3), y1 + rng.randint(10, height // 3)
        colour = tuple(rng.randrange(256) for _ in range(3))
        shape = rng.choice(("rectangle", "ellipse"))
        getattr(draw, shape)((x1, y1, x2, y2), fill=colour, outline=(0, 0, 0))
    draw.text((rng.randrange(width // 2), rng.randrange(height // 2)), f"SAMPLE {seed}", fill=(255, 255, 255))
    return image


def encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": 90} if fmt in ("JPEG", "WEBP") else {}))
    return buffer.getvalue()


def make_samples(count: int, seed: int = 0, size: tuple[int, int] = (640, 480)) -> list[Sample]:
    """`count` images cycling through JPEG, PNG and WebP."""
    samples = []
    for index in range(count):
        fmt, ext = _FORMATS[index % len(_FORMATS)]
        samples.append(Sample(f"sample-{seed}-{index:03d}.{ext}", encode(make_image(seed + index, size), fmt), fmt))
    return samples


XMP_TEMPLATE = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
 Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/digitalsourcetype/{source_type}"/>
</rdf:RDF></x:xmpmeta><?xpacket end="w"?>"""


def with_xmp_source_type(image: Image.Image, source_type: str = "trainedAlgorithmicMedia") -> bytes:
    """A JPEG whose XMP packet declares an IPTC DigitalSourceType, as generators and editors write it."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90, xmp=XMP_TEMPLATE.format(source_type=source_type).encode())
    return buffer.getvalue()


def with_a1111_parameters(image: Image.Image, seed: int = 1234) -> bytes:
    """A PNG with Automatic1111's infotext in its `parameters` text chunk, as the web UI saves it."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(
        "parameters",
        "a lighthouse at dusk, oil painting\nNegative prompt: blurry\n"
        f"Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: {seed}, Size: {image.width}x{image.height}, "
        "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly",
    )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def image_event_json(
    event_id: str, image: dict[str, str], *, content_id: str | None = None, metadata: dict[str, Any] | None = None
) -> bytes:
    """An ImageEvent record value as an uploader would produce it, submitted now. Not validated here, so
    demos and tests can also build the bad events the worker must dead-letter."""
    body = {
        "schema_version": 1,
        "event_id": event_id,
        "content_id": content_id or f"content-{event_id}",
        "submitted_at": datetime.now(UTC).isoformat(),
        "image": image,
        "metadata": metadata or {},
    }
    return json.dumps(body).encode()


def write_samples(out_dir: str | Path, count: int, seed: int = 0, size: tuple[int, int] = (640, 480)) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for sample in make_samples(count, seed, size):
        path = out / sample.name
        path.write_bytes(sample.data)
        paths.append(path)
    return paths


class LocalImageServer:
    """Serves images over HTTP on a loopback address, for the demo's URL events and the tests.

    Paths map to bytes; `/redirect?to=URL` answers 302 to URL (to exercise redirect checks); anything
    else is 404. Binds 127.0.0.2 by default so 127.0.0.1 can stay forbidden in the same run.
    """

    def __init__(self, images: dict[str, bytes] | None = None, host: str = "127.0.0.2", port: int = 0):
        import http.server
        import threading
        from urllib.parse import parse_qs, urlsplit

        files = self.files = dict(images or {})

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", parse_qs(parts.query).get("to", ["/"])[0])
                    self.end_headers()
                    return
                body = files.get(parts.path.lstrip("/"))
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return None

        self._server = http.server.ThreadingHTTPServer((host, port), Handler)
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="image-server", daemon=True)

    def add(self, path: str, data: bytes) -> str:
        """Serve `data` at `path`; returns its URL."""
        self.files[path.lstrip("/")] = data
        return self.url(path)

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}/{path.lstrip('/')}"

    def __enter__(self) -> LocalImageServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
