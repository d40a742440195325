"""Evidence settings: which readers of an upload's own marks run, what they may cost and decide (no I/O here)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class C2paSettings(BaseModel):
    """C2PA Content Credentials. Reading is offline: no remote manifest and no OCSP fetch, ever.

    Production trust: pin a snapshot of the official C2PA trust list (the PEM bundle the C2PA conformance
    programme publishes). Download it once, review it, ship it with the deployment under a dated name and point
    `trust_anchors_pem` at it; refresh it by a release, never by a fetch at run time.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = Field(True, description="read C2PA manifests on uploads that carry one")
    trust_anchors_pem: str = Field(
        "",
        description="path of a PEM bundle of trust anchors (a pinned snapshot of the C2PA trust list); empty: no "
        "signer is trusted, but signatures and hashes are still validated",
    )
    max_bytes: int = Field(
        50 * 1024 * 1024, ge=1, description="uploads larger than this are not read for C2PA (bounds the work)"
    )


class MetadataSettings(BaseModel):
    """XMP and generator metadata: attacker-written, so every read is bounded."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = Field(True, description="read XMP and generator metadata from the upload's bytes")
    max_chunks: int = Field(
        4096,
        ge=1,
        description="chunks or segments walked per file, pixel-data chunks included (a 20 MB PNG written in "
        "8 kB IDAT chunks has ~2,600); the walk stops there",
    )
    max_text_bytes: int = Field(
        2 * 1024 * 1024,
        ge=1024,
        description="text, XMP and EXIF kept from one file, after decompression: a zTXt/iTXt chunk is "
        "inflated at most to what is left of it, and a blob that does not fit is dropped, not cut",
    )
    max_xmp_bytes: int = Field(
        1024 * 1024, ge=1024, description="largest XMP packet parsed (a JPEG's standard packet is under 64 kB)"
    )


class WatermarkSettings(BaseModel):
    """Invisible watermarks of the Stable Diffusion reference pipelines, read from the decoded pixels.

    A threshold counts matching bits of the scheme's fixed message. An unmarked image matches about half of them
    by chance, and a flat one every bit of the message's majority value (27 of 48, 68 of 136), so both sit far
    above the most that 451 unmarked images reached (benchmarks/watermark_fpr.py; figures in
    benchmarks/README.md).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = Field(True, description="read the SDXL and SD v1 invisible watermarks from the decoded pixels")
    sdxl_min_bits: int = Field(
        41,
        ge=28,
        le=48,
        description="bits of SDXL's 48-bit message that must match: unmarked images matched at most 30 (mean 22), "
        "Stability's own check says marked above 35; 41 keeps 11 bits of margin and still passes marked PNG and "
        "JPEG 4:4:4 q95 copies",
    )
    sdv1_min_bits: int = Field(
        104,
        ge=69,
        le=136,
        description='bits of the SD v1 scripts\' 136-bit message ("StableDiffusionV1") that must match: unmarked '
        "images matched at most 80 (mean 68); 104 keeps 24 bits of margin, and marked photos matched 105 or more, "
        "JPEG 4:4:4 q95 copies included",
    )
    max_pixels: int = Field(
        40_000_000,
        ge=65_536,
        description="larger images are not read (bounds the work): downscaling them would destroy the mark",
    )


class EvidenceSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = Field(
        True, description="read C2PA, XMP, generator metadata and invisible watermarks on every upload before the model"
    )
    decides: bool = Field(
        True, description="a valid AI claim decides ai_generated; false: evidence is reported, the model decides"
    )
    run_model_anyway: bool = Field(
        False, description="when evidence decides, still run the model for boxes and an explanation (GPU cost)"
    )
    trusted_capture_log_odds: float = Field(
        -1.0,
        le=0.0,
        description="a valid capture claim (digitalCapture) from a trusted C2PA signer, with no AI claim anywhere "
        "in the upload, adds this to the log-odds of the model's P(ai) (-1: odds of AI x0.37); the model still "
        "runs and decides. 0: ignore capture claims. Only trusted signers count, so it is inert until "
        "c2pa.trust_anchors_pem is set",
    )
    c2pa: C2paSettings = Field(default_factory=C2paSettings)
    metadata: MetadataSettings = Field(default_factory=MetadataSettings)
    watermark: WatermarkSettings = Field(default_factory=WatermarkSettings)
