"""Evidence settings: which readers run and what their findings may decide (no I/O here)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class EvidenceSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = Field(True, description="read C2PA, XMP and generator metadata on every upload before the model")
    decides: bool = Field(
        True, description="a valid AI claim decides ai_generated; false: evidence is reported, the model decides"
    )
    run_model_anyway: bool = Field(
        False, description="when evidence decides, still run the model for boxes and an explanation (GPU cost)"
    )
