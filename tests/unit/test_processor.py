"""One record -> outputs, with a scripted engine: dead-letter stages, engine retries, headers, keys."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json

import httpx
import pytest

from zoomguard.detector.engines.base import GenerationRequest
from zoomguard.detector.engines.scripted import ScriptedEngine
from zoomguard.detector.families import FAMILIES
from zoomguard.detector.settings import DetectorSettings
from zoomguard.detector.zoomin import ZoomInDetector
from zoomguard.errors import EngineUnavailableError
from zoomguard.kafka.settings import TopicSettings
from zoomguard.known.bank import BankEntry, decode_record
from zoomguard.known.hashing import pdq_of_bytes
from zoomguard.known.settings import KnownContentSettings
from zoomguard.media.fetch import URLFetcher
from zoomguard.media.settings import FetchSettings
from zoomguard.review.ls_tasks import label_studio_task
from zoomguard.samples import encode, make_image
from zoomguard.schemas.detection import ModelInfo
from zoomguard.schemas.evidence import EvidenceItem
from zoomguard.worker.cache import VerdictCache
from zoomguard.worker.processor import EventProcessor, InputRecord
from zoomguard.worker.settings import WorkerSettings

IMAGE = encode(make_image(5, (200, 150)), "PNG")


def _processor(script, sleeps: list[float] | None = None, max_output_bytes: int = 4 << 20, **cascade) -> EventProcessor:  # type: ignore[no-untyped-def]
    async def sleep(delay: float) -> None:
        (sleeps if sleeps is not None else []).append(delay)

    detector = ZoomInDetector(
        ScriptedEngine(script),
        DetectorSettings(),
        FAMILIES["qwen2_5_vl"],
        ModelInfo(name="m", version="v1", family="qwen2_5_vl"),
    )
    fetcher = URLFetcher(
        FetchSettings(), client=httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(404)))
    )
    worker = WorkerSettings(audit_rate=0.0, retry_initial_s=0.5, retry_max_s=2.0)
    return EventProcessor(
        detector,
        fetcher,
        VerdictCache(10),
        worker,
        TopicSettings(),
        label_studio_task,
        sleep=sleep,
        max_output_bytes=max_output_bytes,
        **cascade,
    )


def _record(value: bytes | None, key: bytes | None = b"k", headers: tuple[tuple[str, bytes], ...] = ()) -> InputRecord:
    return InputRecord("images.submitted", 1, 7, key, value, headers)


def _event(image: dict[str, str], event_id: str = "e-1") -> bytes:
    return json.dumps(
        {"event_id": event_id, "content_id": "c", "submitted_at": "2026-11-24T00:00:00Z", "image": image}
    ).encode()


def _confident(request: GenerationRequest) -> tuple[str, float]:
    if len(request.turns) == 1:
        return '{"explanation": "x", "regions": [], "verdict": "real"}', 0.05
    return '{"explanation": "y", "verdict": "real"}', 0.05


def test_verdict_output_keyed_by_event_id_with_trace_headers() -> None:
    headers = (("traceparent", b"00-" + b"a" * 32 + b"-" + b"b" * 16 + b"-01"), ("other", b"dropped"))
    record = _record(_event({"data_b64": base64.b64encode(IMAGE).decode()}), headers=headers)
    outcome = asyncio.run(_processor(_confident).process(record))
    assert outcome.kind == "verdict" and outcome.decision == "real"
    (output,) = outcome.outputs  # confident and not audited: no review request
    assert output.topic == "images.verdicts" and output.key == b"e-1"
    assert output.headers == [headers[0]]
    body = json.loads(output.value)
    assert body["source"] == {"topic": "images.submitted", "partition": 1, "offset": 7}
    assert body["decision"] == "real" and body["review_requested"] is False


def test_engine_outage_is_retried_with_capped_backoff_not_dead_lettered() -> None:
    failures = 4

    def script(request: GenerationRequest) -> tuple[str, float]:
        nonlocal failures
        if failures:
            failures -= 1
            raise EngineUnavailableError("server down")
        return _confident(request)

    sleeps: list[float] = []
    processor = _processor(script, sleeps)
    outcome = asyncio.run(processor.process(_record(_event({"data_b64": base64.b64encode(IMAGE).decode()}))))
    assert outcome.kind == "verdict"
    assert sleeps == [0.5, 1.0, 2.0, 2.0]
    assert processor.engine_retries == 4


def test_dead_letters_keep_the_original_record_and_say_why() -> None:
    cases = {
        "parse": _record(b"\xff\xfe not json", key=None),
        "decode": _record(_event({"data_b64": base64.b64encode(b"not an image").decode()}, "e-2")),
        "fetch": _record(_event({"url": "http://10.0.0.1/a.png"}, "e-3")),
    }
    processor = _processor(_confident)
    for stage, record in cases.items():
        outcome = asyncio.run(processor.process(record))
        assert outcome.kind == "dead_letter"
        (output,) = outcome.outputs
        letter = json.loads(output.value)
        assert output.topic == "images.dlq"
        assert letter["stage"] == stage
        assert base64.b64decode(letter["original_value_b64"]) == record.value
        assert letter["source"]["offset"] == 7 and letter["attempts"] >= 1
    assert json.loads(asyncio.run(processor.process(cases["fetch"])).outputs[0].value)["event_id"] == "e-3"


def test_a_dead_letter_too_large_to_publish_keeps_a_pointer_instead_of_the_bytes() -> None:
    """Base64 makes the letter 4/3 of the input: past the producer's limit it would stall the partition."""
    small = _record(b"\xff" * 1000, key=None)
    large = _record(b"\xff" * 200_000, key=None)
    processor = _processor(_confident, max_output_bytes=64 * 1024 + 200_000)
    kept = json.loads(asyncio.run(processor.process(small)).outputs[0].value)
    assert base64.b64decode(kept["original_value_b64"]) == small.value and kept["original_omitted"] is None
    outcome = asyncio.run(processor.process(large))
    (output,) = outcome.outputs
    letter = json.loads(output.value)
    assert len(output.value) < 64 * 1024
    assert letter["original_value_b64"] is None and letter["original_omitted"] == "too_large"
    assert letter["original_value_bytes"] == 200_000
    assert letter["original_value_sha256"] == hashlib.sha256(large.value or b"").hexdigest()
    assert letter["source"] == {"topic": "images.submitted", "partition": 1, "offset": 7}


def test_a_bug_parks_the_record_in_the_dead_letter_topic() -> None:
    def broken(request: GenerationRequest) -> str:
        raise RuntimeError("boom")

    outcome = asyncio.run(_processor(broken).process(_record(_event({"data_b64": base64.b64encode(IMAGE).decode()}))))
    letter = json.loads(outcome.outputs[0].value)
    assert (outcome.kind, letter["error"]["kind"]) == ("dead_letter", "internal_error")
    assert "boom" in letter["error"]["message"]


# --- known.from_evidence: an upload its marks decided enters the bank with its verdict ---

INFOTEXT = EvidenceItem(
    kind="generator_metadata", claim="ai_generated", valid=True, source="Automatic1111", detail="Steps: 20"
)


def _textured() -> bytes:
    """A scene with colour texture: PDQ quality 100 (a flat generated scene hashes below 50)."""
    from PIL import Image

    scene = make_image(906, (320, 240))
    noise = Image.merge("RGB", [Image.effect_noise((40, 30), 60) for _ in range(3)]).resize(scene.size)
    return encode(Image.blend(scene, noise, 0.4), "PNG")


FLAT = encode(make_image(905, (320, 240)), "PNG")  # PDQ quality 24


@pytest.mark.parametrize(("data", "enters"), [(_textured(), True), (FLAT, False)], ids=["textured", "flat"])
def test_an_upload_decided_by_its_marks_enters_the_bank(data: bytes, enters: bool) -> None:
    processor = _processor(
        _confident, read_evidence=lambda _: [INFOTEXT], known=KnownContentSettings(from_evidence=True)
    )
    outcome = asyncio.run(processor.process(_record(_event({"data_b64": base64.b64encode(data).decode()}))))
    assert outcome.decision_source == "evidence" and (pdq_of_bytes(data).quality >= 50) is enters
    bank = [o for o in outcome.outputs if o.topic == TopicSettings().known]
    if not enters:  # too flat to ever match: no entry
        assert bank == []
        return
    [output] = bank
    entry = decode_record(output.key, output.value)
    assert isinstance(entry, BankEntry)
    assert (entry.entry_id, entry.label, entry.source, entry.event_id) == (
        "evidence:e-1",
        "ai_generated",
        "evidence",
        "e-1",
    )
    assert entry.pdq == pdq_of_bytes(data).hex and entry.decided_by == "generator_metadata: Automatic1111"


def test_evidence_enters_the_bank_only_when_asked() -> None:
    data = base64.b64encode(_textured()).decode()
    processor = _processor(_confident, read_evidence=lambda _: [INFOTEXT])
    outcome = asyncio.run(processor.process(_record(_event({"data_b64": data}))))
    assert [o.topic for o in outcome.outputs] == [TopicSettings().verdicts]
