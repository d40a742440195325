"""Media settings: how image URLs may be fetched and how much an untrusted image may cost (no I/O here)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field


class FetchSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    max_bytes: int = Field(20 * 1024 * 1024, ge=1024, description="largest image body accepted")
    connect_timeout_s: float = Field(5.0, gt=0, description="TCP/TLS connect timeout")
    total_timeout_s: float = Field(30.0, gt=0, description="deadline for one attempt, redirects included")
    max_redirects: int = Field(5, ge=0, description="redirect hops followed (each one re-checked)")
    attempts: int = Field(4, ge=1, description="tries for transient failures before dead-lettering")
    backoff_s: float = Field(0.5, ge=0, description="first retry delay; doubles per attempt, with jitter")
    allowed_networks: list[str] = Field(
        default_factory=list,
        description="CIDRs allowed even though private/loopback (e.g. 10.0.0.0/8 for an internal CDN)",
    )
    allowed_ports: list[int] = Field(default_factory=list, description="ports besides 80/443 that may be used")
    user_agent: str = Field("zoomguard/0.1 (+content moderation)", description="User-Agent sent")


@dataclass(frozen=True)
class ImageLimits:
    """Why: uploads are untrusted; these bound memory and CPU per image, and per process."""

    max_bytes: int = field(default=20 * 1024 * 1024, metadata={"doc": "largest encoded image accepted (bytes)"})
    max_pixels: int = field(
        default=50_000_000, metadata={"doc": "largest width x height, checked from the header before decoding"}
    )
    max_jpeg_scans: int = field(
        default=100,
        metadata={"doc": "JPEGs with more scans are refused before decoding (scan bombs; a progressive photo has ~10)"},
    )
    max_decoded_pixels: int = field(
        default=200_000_000,
        metadata={
            "doc": "decoded pixels one process holds at once (decodes, and originals until their crops are cut); "
            "at least max_pixels"
        },
    )

    def __post_init__(self) -> None:
        if min(self.max_bytes, self.max_pixels, self.max_jpeg_scans) < 1:
            raise ValueError(f"image limits must be positive, got {self}")
        if self.max_decoded_pixels < self.max_pixels:
            raise ValueError(
                f"max_decoded_pixels ({self.max_decoded_pixels:,}) must be at least max_pixels ({self.max_pixels:,})"
            )
