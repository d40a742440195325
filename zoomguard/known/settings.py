"""Known-content settings: how uploads are hashed, what counts as a match, what a match decides (no I/O here)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class KnownContentSettings(BaseModel):
    """PDQ matching against the bank of known images.

    Memory per million entries in a worker's index: 96 MB of hashes and chunk tables, plus the entry ids (about
    150 bytes each at 40 characters); measured 252-312 MiB with 71-character import ids (benchmarks/README.md).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = Field(True, description="hash every upload and look it up in the bank before the model")
    max_distance: int = Field(
        31,
        ge=0,
        le=128,
        description="largest Hamming distance (of 256 bits) that still matches; 31 is ThreatExchange's confident "
        "match (re-encodes and resizes land well inside it, distinct photos outside it)",
    )
    min_quality: int = Field(
        50,
        ge=0,
        le=100,
        description="uploads and bank entries whose PDQ quality is below this never match (flat images and "
        "gradients hash alike: ThreatExchange ignores quality < 50)",
    )
    dihedral: bool = Field(
        False,
        description="also match the 8 mirror and rotation variants of the upload (about 8x the lookup cost)",
    )
    hash_size: int = Field(
        512,
        ge=64,
        le=4096,
        description="the longest side an image is reduced to before hashing (the worker reduces the decode the "
        "model uses; `bank feed` decodes JPEGs at a reduced scale): hashing 12 MP at full size costs ~1 s",
    )
    decides: bool = Field(
        True, description="a match decides the verdict with the bank entry's label; false: reported only"
    )
    run_model_anyway: bool = Field(
        False, description="when a match decides, still run the model for boxes and an explanation (GPU cost)"
    )
    from_evidence: bool = Field(
        False,
        description="images decided by conclusive evidence enter the bank (evidence:<event_id>), so their "
        "re-uploads with the marks stripped are still caught; off until its false-match rate is measured on "
        "production traffic",
    )
    catchup_s: float = Field(
        120.0,
        gt=0,
        description="how long a starting worker reads the bank before its first event (about 16 s per million "
        "entries); past it, the worker starts on what it has and goes on loading",
    )
    feed_group_id: str = Field(
        "zoomguard-bank-feed", min_length=1, description="`bank feed`'s consumer group on topics.review_decisions"
    )
    join_wait_s: float = Field(
        30.0,
        ge=0,
        description="`bank feed`: how long a decision waits for its event's verdict (and hash) to be read before "
        "it is skipped and logged",
    )
    join_max_events: int = Field(
        1_000_000, ge=1, description="`bank feed`: event hashes held for joining (the newest; ~200 B each)"
    )
    io_timeout_s: float = Field(
        120.0, gt=0, description="`bank import` waits this long for acknowledgements, `bank export` to read the topic"
    )
    max_entries: int = Field(
        5_000_000,
        ge=1,
        description="the most entries one worker indexes (250-310 MB per million with their ids, so ~1.5 GB at "
        "the default); entries beyond it are refused and counted, never silently dropped",
    )
