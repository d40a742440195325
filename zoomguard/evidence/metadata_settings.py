"""Limits of the metadata readers (no I/O here): metadata is attacker-written, so every read is bounded."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class MetadataSettings(BaseModel):
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
