"""What one benchmark run measures with: model, engine mode, image sizes and counts."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class BenchOptions:
    model: str
    images: int = 128  # engine ceiling and pipeline
    sequential_images: int = 16
    paced_images: int = 64  # the latency run, paced at `paced_load` of the pipeline's throughput
    paced_load: float = 0.7
    repeats: int = 3  # every stage, interleaved; the report gives median and spread
    regions_per_image: float | None = 1.95  # Query 1's regions (the paper's 7B); None: whatever the model proposes
    naive_images: int = 8
    image_size: tuple[int, int] = (320, 240)
    prepost_megapixels: tuple[float, ...] = (1.0, 4.0, 12.0)
    prepost_repeats: int = 3
    memory_backlog: int = 32  # the large run uses 10x this
    repost_share: float = 0.3
    marked_share: float = 0.3  # uploads carrying marks in the evidence run (A1111, XMP, SDXL watermark in turn)
    copy_share: float = 0.2  # near-duplicates of known images in the mixed run (besides marked_share marked)
    known_entries: int = 1_000_000  # the known-content index stage: lookups in a bank this large
    busy_threshold_cores: float = 0.3  # other processes' CPU use above this before a stage: wait, then flag
    busy_wait_s: float = 60.0
    evidence_megapixels: tuple[float, ...] = (1.0, 12.0)
    evidence_reads: int = 20  # evidence cost: reads of each file per round
    evidence_rounds: int = 3
    max_in_flight: int = 128  # the worker's default window
    engine_overrides: dict[str, object] = field(default_factory=dict)
    detector_overrides: dict[str, object] = field(default_factory=dict)
    server_urls: tuple[str, ...] = ()

    @classmethod
    def quick(cls, model: str, **changes: object) -> BenchOptions:
        return cls(model=model, **changes)  # type: ignore[arg-type]

    @classmethod
    def full(cls, model: str, **changes: object) -> BenchOptions:
        base = {
            "images": 256,
            "sequential_images": 32,
            "paced_images": 128,
            "naive_images": 16,
            "memory_backlog": 64,
            "prepost_repeats": 5,
            "evidence_reads": 100,
            "evidence_rounds": 5,
        }
        return cls(model=model, **{**base, **changes})  # type: ignore[arg-type]
