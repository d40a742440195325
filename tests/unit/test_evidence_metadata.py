"""Metadata evidence: XMP source types and generator metadata, read from files Pillow writes here; the look-alikes
that must not count; and hostile bytes (XML attacks, compression bombs, fuzzed files) that must not hurt."""

from __future__ import annotations

import ast
import gc
import hashlib
import io
import json
import random
import socket
import struct
import time
import tracemalloc
import zlib
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin
from pydantic import ValidationError
from structlog.testing import capture_logs

from zoomguard.evidence import metadata as metadata_module
from zoomguard.evidence.containers import XMP_EXTENSION_PREFIX, XMP_JPEG_PREFIX, find_spans, read_blobs
from zoomguard.evidence.exif import decode_user_comment
from zoomguard.evidence.metadata import read_metadata, sniff
from zoomguard.evidence.settings import MetadataSettings
from zoomguard.schemas.evidence import EvidenceItem

SETTINGS = MetadataSettings()
IRI = "http://cv.iptc.org/newscodes/digitalsourcetype/"
IPTC_NS = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
INFOTEXT = (
    "a photo of a cat, best quality\nNegative prompt: blurry\n"
    "Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1234567, Size: 512x512, "
    "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Version: v1.10.1"
)
STEPS_LINE = INFOTEXT.splitlines()[-1]
COMFY_PROMPT = {
    "3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 20, "model": ["4", 0]}},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
    "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0]}},
}
COMFY_WORKFLOW = {
    "last_node_id": 9,
    "nodes": [{"id": 3, "type": "KSampler"}, {"id": 9, "type": "SaveImage"}],
    "links": [],
}


# ---------------------------------------------------------------- fixtures, written with Pillow


def image() -> Image.Image:
    return Image.new("RGB", (32, 24), (120, 90, 60))


def encode(fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    image().save(out, fmt, **params)
    return out.getvalue()


def png(*chunks: tuple[str, str, str]) -> bytes:
    """A PNG with text chunks: (kind, key, value), kind tEXt, zTXt, iTXt or iTXt-z (compressed)."""
    info = PngImagePlugin.PngInfo()
    for kind, key, value in chunks:
        if kind.startswith("iTXt"):
            info.add_itxt(key, value, zip=kind == "iTXt-z")
        else:
            info.add_text(key, value, zip=kind == "zTXt")
    return encode("PNG", pnginfo=info)


def exif(software: str | None = None, comment: bytes | None = None, order: str = ">") -> bytes:
    """TIFF-structured EXIF, big-endian (Pillow's default) or little-endian."""
    tags = Image.Exif()
    tags.endian = order
    if software is not None:
        tags[0x0131] = software
    if comment is not None:
        tags.get_ifd(0x8769)[0x9286] = comment
    return tags.tobytes()


def xmp(body: str, head: str = "") -> bytes:
    """An XMP packet whose rdf:Description carries `body` (attributes, then `>` and elements)."""
    return (
        f'{head}<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="{IPTC_NS}" xmlns:xmp="http://ns.adobe.com/xap/1.0/" {body}'
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
        '<?xpacket end="w"?>'
    ).encode()


def source_type(term: str, extra: str = "") -> bytes:
    return xmp(f'Iptc4xmpExt:DigitalSourceType="{IRI}{term}" {extra}>')


def with_xmp(fmt: str, packet: bytes) -> bytes:
    if fmt == "PNG":
        return png(("iTXt", "XML:com.adobe.xmp", packet.decode()))
    return encode(fmt, xmp=packet)


def claims(data: bytes) -> list[tuple[str, str, str]]:
    return [(item.kind, item.claim, item.source) for item in read_metadata(data, SETTINGS)]


def ai(kind: str, source: str) -> list[tuple[str, str, str]]:
    return [(kind, "ai_generated", source)]


# ---------------------------------------------------------------- IPTC DigitalSourceType in XMP


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_trained_algorithmic_media_is_ai_generated_in_every_container(fmt: str) -> None:
    data = with_xmp(fmt, source_type("trainedAlgorithmicMedia"))
    assert sniff(data, SETTINGS)
    assert read_metadata(data, SETTINGS) == [
        EvidenceItem(
            kind="xmp", claim="ai_generated", valid=True, trusted=False, source="XMP", detail="trainedAlgorithmicMedia"
        )
    ]


@pytest.mark.parametrize(
    ("packet", "expected"),
    [
        (source_type("compositeWithTrainedAlgorithmicMedia"), "ai_generated"),
        (source_type("compositeSynthetic"), "ai_generated"),
        (source_type("digitalCapture"), "real"),
        (source_type("computationalCapture"), "real"),
        (source_type("algorithmicMedia"), None),  # procedural, not trained: neither
        (source_type("somethingElse"), None),
        # as an element, with the full IRI or the bare term, or as an RDF resource
        (
            xmp(f"><Iptc4xmpExt:DigitalSourceType>{IRI}trainedAlgorithmicMedia</Iptc4xmpExt:DigitalSourceType>"),
            "ai_generated",
        ),
        (
            xmp("><Iptc4xmpExt:DigitalSourceType> trainedAlgorithmicMedia </Iptc4xmpExt:DigitalSourceType>"),
            "ai_generated",
        ),
        (xmp(f'><Iptc4xmpExt:DigitalSourceType rdf:resource="{IRI}digitalCapture"/>'), "real"),
        # the property of another namespace is not IPTC's
        (xmp('xmlns:other="urn:x" other:DigitalSourceType="trainedAlgorithmicMedia">'), None),
    ],
)
def test_source_types(packet: bytes, expected: str | None) -> None:
    items = read_metadata(with_xmp("JPEG", packet), SETTINGS)
    assert [item.claim for item in items] == ([expected] if expected else [])
    assert all(item.kind == "xmp" and item.valid and not item.trusted for item in items)


def test_ai_system_used_then_creator_tool_name_the_source() -> None:
    both = source_type(
        "trainedAlgorithmicMedia", 'Iptc4xmpExt:AISystemUsed="Imagen 4" xmp:CreatorTool="Adobe Photoshop 26.0"'
    )
    assert claims(with_xmp("JPEG", both)) == ai("xmp", "Imagen 4")
    tool = source_type("compositeWithTrainedAlgorithmicMedia", 'xmp:CreatorTool="Adobe Photoshop 26.0 (Windows)"')
    [item] = read_metadata(with_xmp("WEBP", tool), SETTINGS)
    assert (item.source, item.detail) == ("Adobe Photoshop 26.0 (Windows)", "compositeWithTrainedAlgorithmicMedia")


def test_creator_tool_naming_an_ai_tool_is_no_claim() -> None:
    packet = xmp('xmp:CreatorTool="Midjourney" Iptc4xmpExt:AISystemUsed="Stable Diffusion">')
    assert read_metadata(with_xmp("JPEG", packet), SETTINGS) == []
    assert not sniff(with_xmp("JPEG", packet), SETTINGS)  # no DigitalSourceType: the XMP reader does not even run


# ---------------------------------------------------------------- generator metadata


@pytest.mark.parametrize("kind", ["tEXt", "zTXt", "iTXt", "iTXt-z"])
def test_a1111_png_parameters(kind: str) -> None:
    [item] = read_metadata(png((kind, "parameters", INFOTEXT)), SETTINGS)
    assert (item.kind, item.claim, item.source, item.detail) == (
        "generator_metadata",
        "ai_generated",
        "A1111",
        STEPS_LINE,
    )


def test_forge_is_named_by_its_version() -> None:
    text = INFOTEXT.replace("Version: v1.10.1", "Version: f2.0.1v1.10.1-previous-313-g8a042934")
    assert claims(png(("tEXt", "parameters", text))) == ai("generator_metadata", "Forge")


@pytest.mark.parametrize(
    "comment",
    [
        b"UNICODE\x00" + INFOTEXT.encode("utf-16-be"),
        b"UNICODE\x00" + INFOTEXT.encode("utf-16-le"),
        b"UNICODE\x00" + INFOTEXT.encode("utf-16"),  # with a byte-order mark
        b"ASCII\x00\x00\x00" + INFOTEXT.encode(),
    ],
    ids=["utf16-be", "utf16-le", "utf16-bom", "ascii"],
)
@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
@pytest.mark.parametrize("order", [">", "<"], ids=["MM", "II"])
def test_a1111_user_comment(fmt: str, comment: bytes, order: str) -> None:
    data = encode(fmt, exif=exif(comment=comment, order=order))
    assert data.find(b"II*\x00" if order == "<" else b"MM\x00*") > 0
    assert sniff(data, SETTINGS)
    [item] = read_metadata(data, SETTINGS)
    assert (item.source, item.detail) == ("A1111", STEPS_LINE)


def test_comfyui_prompt_and_workflow() -> None:
    both = png(("tEXt", "prompt", json.dumps(COMFY_PROMPT)), ("tEXt", "workflow", json.dumps(COMFY_WORKFLOW)))
    [item] = read_metadata(both, SETTINGS)  # one item per generator
    assert (item.source, item.detail) == ("ComfyUI", "nodes: CheckpointLoaderSimple, KSampler, SaveImage")
    [item] = read_metadata(png(("tEXt", "workflow", json.dumps(COMFY_WORKFLOW))), SETTINGS)
    assert (item.source, item.detail) == ("ComfyUI", "nodes: KSampler, SaveImage")


def test_invokeai_metadata_and_graph() -> None:
    meta = {"generation_mode": "txt2img", "positive_prompt": "a cat", "seed": 7, "steps": 30, "scheduler": "euler"}
    [item] = read_metadata(png(("tEXt", "invokeai_metadata", json.dumps(meta))), SETTINGS)
    assert (item.source, item.detail) == ("InvokeAI", "generation_mode: txt2img, steps: 30, scheduler: euler, seed: 7")
    graph = {
        "id": "g",
        "nodes": {"a": {"id": "a", "type": "main_model_loader"}, "b": {"id": "b", "type": "denoise_latents"}},
        "edges": [],
    }
    [item] = read_metadata(png(("tEXt", "invokeai_graph", json.dumps(graph))), SETTINGS)
    assert (item.source, item.detail) == ("InvokeAI", "nodes: denoise_latents, main_model_loader")


def test_novelai_software_with_json_comment() -> None:
    comment = {"prompt": "a cat", "steps": 28, "sampler": "k_euler_ancestral", "scale": 5.0, "seed": 42, "uc": "lowres"}
    data = png(("tEXt", "Software", "NovelAI"), ("tEXt", "Comment", json.dumps(comment)))
    [item] = read_metadata(data, SETTINGS)
    assert (item.source, item.detail) == ("NovelAI", "steps: 28, sampler: k_euler_ancestral, scale: 5.0, seed: 42")


def test_swarmui_parameters_json() -> None:
    params = {
        "sui_image_params": {
            "prompt": "a cat",
            "model": "OfficialStableDiffusion/sd_xl_base_1.0",
            "seed": 9,
            "steps": 20,
        }
    }
    [item] = read_metadata(png(("tEXt", "parameters", json.dumps(params))), SETTINGS)
    assert (item.source, item.detail) == (
        "SwarmUI",
        "model: OfficialStableDiffusion/sd_xl_base_1.0, steps: 20, seed: 9",
    )


@pytest.mark.parametrize(
    ("software", "expected"),
    [
        ("Fooocus v2.5.5", "Fooocus"),
        ("fooocus", None),
        ("NovelAI", "NovelAI"),
        ("Adobe Lightroom 7.0", None),
        ("Adobe Photoshop 25.0 (Macintosh)", None),
        ("Ver.1.00", None),
        ("NovelAIfan edit", None),
    ],
)
def test_exif_software(software: str, expected: str | None) -> None:
    data = encode("JPEG", exif=exif(software=software))
    assert claims(data) == (ai("generator_metadata", expected) if expected else [])


def test_fooocus_bare_utf8_user_comment_with_software() -> None:
    data = encode("JPEG", exif=exif(software="Fooocus v2.5.5", comment=INFOTEXT.encode()))
    assert {source for _, _, source in claims(data)} == {"Fooocus", "A1111"}


@pytest.mark.parametrize(
    "chunks",
    [
        [("tEXt", "parameters", "exported with Steps: 3, quality high")],  # not an infotext line
        [("tEXt", "parameters", "Steps: 20, Sampler: Euler\nSeed: 5")],  # the pairs are not on one line
        [("tEXt", "parameters", "Negative prompt: Steps: 20, Sampler: Euler, Seed: 5")],  # not the line start
        [("tEXt", "parameters", json.dumps({"iso": 100, "exposure": "1/125"}))],  # some other app's JSON
        [("tEXt", "prompt", "a watercolour of a cat")],  # a prompt as plain text
        [("tEXt", "prompt", json.dumps(["KSampler", "SaveImage"]))],
        [("tEXt", "prompt", json.dumps({"3": {"type": "KSampler"}}))],  # no class_type
        [("tEXt", "prompt", json.dumps({"3": {"class_type": "KSampler"}, "meta": 1}))],  # not every value a node
        [("tEXt", "prompt", "{}")],
        [("tEXt", "workflow", json.dumps({"nodes": []}))],
        [("tEXt", "invokeai_metadata", json.dumps({"seed": 1}))],
        [("tEXt", "Software", "NovelAI")],  # no Comment
        [("tEXt", "Software", "NovelAI"), ("tEXt", "Comment", "a nice picture")],
        [("tEXt", "Software", "Adobe ImageReady"), ("tEXt", "Comment", json.dumps({"steps": 2, "seed": 3}))],
        [("tEXt", "Comment", json.dumps({"steps": 28, "seed": 42}))],
        [("tEXt", "parameters", json.dumps({"sui_image_params": "x"}))],
        [("tEXt", "prompt", "[" * 100_000)],  # nesting past the JSON parser's recursion
        [("tEXt", "Description", INFOTEXT)],  # the right format under a key no generator uses
    ],
)
def test_look_alikes_are_not_evidence(chunks: list[tuple[str, str, str]]) -> None:
    assert read_metadata(png(*chunks), SETTINGS) == []


def test_details_are_short_and_printable() -> None:
    hostile = "x" * 50_000 + "\nSteps: 20, Sampler: Euler\u202e, Seed: 1, Lora: " + "\x1b[31m" + "y" * 50_000
    [item] = read_metadata(png(("tEXt", "parameters", hostile)), SETTINGS)
    assert len(item.detail) <= 200 and item.detail.startswith("Steps: 20, Sampler: Euler , Seed: 1")
    assert item.detail.isprintable() and "\u202e" not in item.detail and "\x1b" not in item.detail
    many = {str(i): {"class_type": f"Node{i}" * 5} for i in range(5000)}
    [item] = read_metadata(png(("zTXt", "prompt", json.dumps(many))), SETTINGS)
    assert item.source == "ComfyUI" and len(item.detail) <= 200


def test_xmp_and_generator_claims_together_deduplicated() -> None:
    packet = source_type("trainedAlgorithmicMedia")
    data = png(
        ("iTXt", "XML:com.adobe.xmp", packet.decode()),
        ("tEXt", "parameters", INFOTEXT),
        ("tEXt", "parameters", INFOTEXT),
    )
    assert claims(data) == [("xmp", "ai_generated", "XMP"), ("generator_metadata", "ai_generated", "A1111")]


# ---------------------------------------------------------------- XML attacks


BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10))
    + f'<!ENTITY src "{IRI}trainedAlgorithmicMedia">]>'
)


def entity_packet(doctype: str) -> bytes:
    """A packet whose source type is the entity `src` (and, for billion laughs, with `lol9` in a label)."""
    laughs = "<xmp:Label>&lol9;</xmp:Label>" if "lol9" in doctype else ""
    return xmp(f"><Iptc4xmpExt:DigitalSourceType>&src;</Iptc4xmpExt:DigitalSourceType>{laughs}", head=doctype)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every attempt to connect is recorded and refused."""
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise OSError("network is off in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


def test_billion_laughs_is_refused_not_expanded() -> None:
    data = encode("JPEG", xmp=entity_packet(BILLION_LAUGHS))
    tracemalloc.start()
    started = time.perf_counter()
    with capture_logs() as logs:
        assert read_metadata(data, SETTINGS) == []
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 1.0 and peak < 4 * 1024 * 1024
    assert [(log["event"], log["log_level"], log["reason"]) for log in logs] == [
        ("xmp packet refused", "warning", "DTDForbidden")
    ]


@pytest.mark.parametrize("scheme", ["file", "http"])
def test_external_entities_are_neither_read_nor_fetched(scheme: str, tmp_path: Path, no_network: list[object]) -> None:
    secret = tmp_path / "source-type.txt"
    secret.write_text(f"{IRI}trainedAlgorithmicMedia")
    target = secret.as_uri() if scheme == "file" else "http://203.0.113.7/source-type.txt"
    doctype = f'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY src SYSTEM "{target}">]>'
    for fmt in ("JPEG", "PNG", "WEBP"):
        with capture_logs() as logs:
            assert read_metadata(with_xmp(fmt, entity_packet(doctype)), SETTINGS) == []
        assert [log["event"] for log in logs] == ["xmp packet refused"]
    assert no_network == []


def test_broken_xml_is_no_evidence() -> None:
    packet = source_type("trainedAlgorithmicMedia")
    for broken in (
        packet[: len(packet) // 2],
        packet.replace(b"rdf:RDF", b"rdf:RDF\xff", 1),
        b"<a>" * 20_000 + b"DigitalSourceType",
    ):
        with capture_logs() as logs:
            assert read_metadata(with_xmp("JPEG", broken), SETTINGS) == []
        assert all(log["event"] == "xmp packet refused" for log in logs)


# ---------------------------------------------------------------- JPEG Extended XMP


def extension_packet(body: str, padding: int = 100_000) -> bytes:
    """An Extended XMP serialization as writers store it (x:xmpmeta, no xpacket wrapper), with a padding
    property that makes it span several APP1 segments."""
    pad = f'<dc:description><rdf:Alt><rdf:li xml:lang="x-default">{"x" * padding}</rdf:li></rdf:Alt></dc:description>'
    return (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="{IPTC_NS}" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f"{body}{pad if padding else ''}</rdf:Description></rdf:RDF></x:xmpmeta>"
    ).encode()


AI_EXTENSION = extension_packet(
    f"<Iptc4xmpExt:DigitalSourceType>{IRI}trainedAlgorithmicMedia</Iptc4xmpExt:DigitalSourceType>"
)


def guid_of(packet: bytes) -> str:
    """What writers use as the GUID: the MD5 of the extension, 32 uppercase hex digits."""
    return hashlib.md5(packet).hexdigest().upper()


def app1(payload: bytes) -> bytes:
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def portion(guid: str, total: int, offset: int, data: bytes) -> bytes:
    return app1(XMP_EXTENSION_PREFIX + guid.encode() + struct.pack(">II", total, offset) + data)


def extension_segments(packet: bytes = AI_EXTENSION, size: int = 65400, guid: str | None = None) -> list[bytes]:
    """The packet cut into portions of `size` bytes (65,400 is the most a segment holds after its header; the
    layout is the one ExifTool 12.57 writes, checked against it by hand)."""
    guid = guid or guid_of(packet)
    return [portion(guid, len(packet), at, packet[at : at + size]) for at in range(0, len(packet), size)]


def standard_packet(guid: str, extra: str = "") -> bytes:
    """The standard packet: names the extension, says who saved the file, declares no source type itself."""
    note = 'xmlns:xmpNote="http://ns.adobe.com/xmp/note/"'
    return xmp(f'{note} xmpNote:HasExtendedXMP="{guid}" xmp:CreatorTool="Photo Editor 3" {extra}>')


def extended_xmp_jpeg(segments: list[bytes] | None = None, standard: bytes | None = None) -> bytes:
    """A JPEG whose only source type is in its Extended XMP (by default: trainedAlgorithmicMedia)."""
    segments = extension_segments() if segments is None else segments
    standard = standard_packet(guid_of(AI_EXTENSION)) if standard is None else standard
    plain = encode("JPEG")
    return plain[:2] + app1(XMP_JPEG_PREFIX + standard) + b"".join(segments) + plain[2:]


EXTENDED_AI = [("xmp", "ai_generated", "Photo Editor 3")]


def test_a_source_type_in_the_extended_xmp_is_read() -> None:
    data = extended_xmp_jpeg()
    spans = find_spans(data, SETTINGS.max_chunks)
    assert [span.kind for span in spans] == ["xmp", "xmp_ext", "xmp_ext"]
    assert b"DigitalSourceType" not in data[spans[0].start : spans[0].end]  # only the extension declares it
    assert sniff(data, SETTINGS)
    assert claims(data) == EXTENDED_AI  # named by the standard packet's CreatorTool: one logical packet
    assert read_blobs(data, spans, SETTINGS).extended_xmp == ((guid_of(AI_EXTENSION), AI_EXTENSION),)


def test_portions_out_of_order_and_a_marker_cut_between_two() -> None:
    assert claims(extended_xmp_jpeg(extension_segments()[::-1])) == EXTENDED_AI
    packet = extension_packet(f'<Iptc4xmpExt:DigitalSourceType rdf:resource="{IRI}trainedAlgorithmicMedia"/>')
    cut = packet.find(b"DigitalSourceType") + 6  # the first portion ends inside the property's only mention
    segments = extension_segments(packet, size=cut)
    assert all(b"DigitalSourceType" not in segment for segment in segments)
    data = extended_xmp_jpeg(segments, standard_packet(guid_of(packet)))
    assert sniff(data, SETTINGS) and claims(data) == EXTENDED_AI


def test_both_packets_count() -> None:
    standard = standard_packet(guid_of(AI_EXTENSION), f'Iptc4xmpExt:DigitalSourceType="{IRI}digitalCapture"')
    assert sorted(claim for _, claim, _ in claims(extended_xmp_jpeg(standard=standard))) == ["ai_generated", "real"]


def shifted(index: int, delta: int) -> list[bytes]:
    """The portions with the offset of portion `index` moved by `delta`."""
    guid, size = guid_of(AI_EXTENSION), 65400
    return [
        portion(guid, len(AI_EXTENSION), at + (delta if at // size == index else 0), AI_EXTENSION[at : at + size])
        for at in range(0, len(AI_EXTENSION), size)
    ]


GUID = guid_of(AI_EXTENSION)
TOTAL = len(AI_EXTENSION)
HEAD, TAIL = AI_EXTENSION[:65400], AI_EXTENSION[65400:]


@pytest.mark.parametrize(
    ("segments", "standard"),
    [
        (extension_segments(guid=guid_of(b"another")), None),  # the standard packet names another GUID
        (None, xmp('xmp:CreatorTool="Photo Editor 3">')),  # no HasExtendedXMP at all
        (None, xmp(f'xmp:CreatorTool="Photo Editor 3" xmp:Label="{GUID}">')),  # the GUID, but not as HasExtendedXMP
        (shifted(1, -10), None),  # overlapping portions
        (shifted(1, +10), None),  # a gap
        (shifted(1, 0xFFFF0000), None),  # an offset far past the end
        (extension_segments()[:1] + extension_segments(), None),  # a portion repeated
        (extension_segments()[:1], None),  # the last portion missing
        ([portion(GUID, TOTAL, 0, HEAD), portion(GUID, TOTAL + 1, 65400, TAIL)], None),  # lengths disagree
        ([portion(GUID, 0xFFFFFFFF, 0, HEAD), portion(GUID, 0xFFFFFFFF, 65400, TAIL)], None),  # 4 GB declared
        ([portion(GUID, TOTAL, 0, HEAD), portion(GUID, TOTAL, 65400, b""), portion(GUID, TOTAL, 65400, TAIL)], None),
        ([segment.replace(GUID.encode(), GUID[:-1].encode() + b"G") for segment in extension_segments()], None),
        ([app1(XMP_EXTENSION_PREFIX + GUID.encode() + b"\x00\x01")], None),  # a header cut short
    ],
    ids=[
        "wrong-guid",
        "not-named",
        "named-elsewhere",
        "overlap",
        "gap",
        "offset-past-end",
        "repeated",
        "missing-last",
        "lengths-disagree",
        "huge-length",
        "empty-portion",
        "not-hex-guid",
        "short-header",
    ],
)
def test_hostile_extended_xmp_is_ignored_whole(segments: list[bytes] | None, standard: bytes | None) -> None:
    data = extended_xmp_jpeg(segments, standard)
    gc.collect()
    tracemalloc.start()
    with capture_logs() as logs:
        assert read_metadata(data, SETTINGS) == []
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 2 * len(data) + (1 << 20)  # nothing allocated for what a header declares
    assert {log["event"] for log in logs} <= {"metadata over limits or malformed, skipped"}


def test_extended_xmp_limits() -> None:
    """The extension must fit max_xmp_bytes and what the standard packet and texts left of max_text_bytes."""
    big = extension_packet(
        f"<Iptc4xmpExt:DigitalSourceType>{IRI}trainedAlgorithmicMedia</Iptc4xmpExt:DigitalSourceType>",
        padding=1_200_000,
    )
    data = extended_xmp_jpeg(extension_segments(big), standard_packet(guid_of(big)))
    assert claims(data) == []
    roomy = MetadataSettings(max_xmp_bytes=2 << 20, max_text_bytes=4 << 20)
    assert [claim for _, claim, _ in claims_with(data, roomy)] == ["ai_generated"]
    tight = MetadataSettings(max_xmp_bytes=2 << 20, max_text_bytes=len(big) + 100)  # the standard packet too
    assert claims_with(data, tight) == []


def test_a_few_segments_of_many_past_max_chunks_are_not_put_together() -> None:
    segments = extension_segments(size=1000)  # 101 portions
    data = extended_xmp_jpeg(segments)
    assert claims(data) == EXTENDED_AI
    assert claims_with(data, MetadataSettings(max_chunks=len(segments))) == []  # the last portion is not walked


def test_an_extension_with_a_dtd_is_refused_and_the_standard_packet_still_counts() -> None:
    extension = BILLION_LAUGHS.encode() + extension_packet(
        "<Iptc4xmpExt:DigitalSourceType>&src;</Iptc4xmpExt:DigitalSourceType>"
    )
    standard = standard_packet(guid_of(extension), f'Iptc4xmpExt:DigitalSourceType="{IRI}digitalCapture"')
    with capture_logs() as logs:
        found = claims(extended_xmp_jpeg(extension_segments(extension), standard))
    assert found == [("xmp", "real", "Photo Editor 3")]
    assert [log["reason"] for log in logs if log["event"] == "xmp packet refused"] == ["DTDForbidden"]


def claims_with(data: bytes, settings: MetadataSettings) -> list[tuple[str, str, str]]:
    return [(item.kind, item.claim, item.source) for item in read_metadata(data, settings)]


# ---------------------------------------------------------------- compression bombs and other limits


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def with_chunks(*chunks: bytes) -> bytes:
    """The fixture PNG with extra chunks right after IHDR (which ends at byte 33)."""
    plain = encode("PNG")
    return plain[:33] + b"".join(chunks) + plain[33:]


def deflate_bomb(megabytes: int) -> bytes:
    """A valid zlib stream of `megabytes` MB of zeros, ~1 kB per MB, built without compressing it all: after a
    full flush the deflate blocks of one zero megabyte stand alone, so they are repeated."""
    zeros = bytes(1 << 20)
    compressor = zlib.compressobj(9)
    head = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    checksum = 1
    for _ in range(megabytes):
        checksum = zlib.adler32(zeros, checksum)
    return head + block * (megabytes - 1) + b"\x01\x00\x00\xff\xff" + struct.pack(">I", checksum)


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return deflate_bomb(256)


@pytest.mark.parametrize("kind", ["zTXt", "iTXt"])
def test_text_compression_bomb_is_refused_within_the_cap(kind: str, bomb: bytes) -> None:
    if kind == "zTXt":
        chunk = png_chunk(b"zTXt", b"parameters\x00\x00" + bomb)
    else:
        chunk = png_chunk(b"iTXt", b"parameters\x00\x01\x00\x00\x00" + bomb)
    data = with_chunks(chunk, png_chunk(b"tEXt", b"parameters\x00" + INFOTEXT.encode()))
    tracemalloc.start()
    started = time.perf_counter()
    with capture_logs() as logs:
        items = read_metadata(data, SETTINGS)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # refused quickly, in a few times the cap (2 MiB), not 256 MB; the honest chunk after it is still read
    assert elapsed < 0.5 and peak < 4 * SETTINGS.max_text_bytes
    assert [item.source for item in items] == ["A1111"]
    assert [log["event"] for log in logs] == ["metadata over limits or malformed, skipped"]


def test_an_xmp_packet_over_its_cap_is_dropped() -> None:
    packet = source_type("trainedAlgorithmicMedia") + b" " * (2 << 20)  # padding, as XMP writers do, but too much
    data = with_chunks(png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x01\x00\x00\x00" + zlib.compress(packet)))
    assert read_metadata(data, SETTINGS) == []
    roomy = MetadataSettings(max_xmp_bytes=4 << 20, max_text_bytes=4 << 20)
    assert [item.claim for item in read_metadata(data, roomy)] == ["ai_generated"]


def test_the_text_budget_is_shared_and_what_does_not_fit_is_dropped_whole() -> None:
    workflow = json.dumps({**COMFY_WORKFLOW, "extra": "x" * 5000})
    data = png(("tEXt", "workflow", workflow), ("tEXt", "parameters", INFOTEXT))
    small = MetadataSettings(max_text_bytes=2048)
    assert [item.source for item in read_metadata(data, small)] == ["A1111"]
    assert {item.source for item in read_metadata(data, SETTINGS)} == {"A1111", "ComfyUI"}


def test_chunk_floods_stop_at_max_chunks() -> None:
    flood = png_chunk(b"tEXt", b"Comment\x00hi") * 100_000
    data = with_chunks(flood, png_chunk(b"tEXt", b"parameters\x00" + INFOTEXT.encode()))
    started = time.perf_counter()
    assert read_metadata(data, SETTINGS) == []  # the infotext lies past the walk's end
    assert time.perf_counter() - started < 0.5
    assert [item.source for item in read_metadata(data, MetadataSettings(max_chunks=200_000))] == ["A1111"]
    jpeg = b"\xff\xd8" + b"\xff" * 1_000_000 + b"\xd9"  # fill bytes count too
    started = time.perf_counter()
    assert read_metadata(jpeg, SETTINGS) == [] and time.perf_counter() - started < 0.5


def padded_png(before: int, *chunks: bytes) -> bytes:
    """The fixture PNG with `before` filler text chunks after IHDR, then `chunks`."""
    return with_chunks(png_chunk(b"tEXt", b"Comment\x00filler") * before, *chunks)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_a_mark_past_max_chunks_is_not_read_and_nothing_fails(fmt: str) -> None:
    """The walk stops after max_chunks chunks (IHDR and pixel chunks count; JPEG: segments, fill bytes too),
    silently: what lies beyond is not read, there is no error and no log line. Documented in the setting."""
    if fmt == "PNG":  # IHDR is chunk 1, the fillers 2..11, the infotext chunk 12
        data = padded_png(10, png_chunk(b"tEXt", b"parameters\x00" + INFOTEXT.encode()))
        at_limit, expected = 12, ai("generator_metadata", "A1111")
    else:  # ten comment segments, then the XMP segment: the 11th
        plain, packet = encode("JPEG"), source_type("trainedAlgorithmicMedia")
        comments = (b"\xff\xfe" + struct.pack(">H", 7) + b"hello") * 10
        data = plain[:2] + comments + app1(XMP_JPEG_PREFIX + packet) + plain[2:]
        at_limit, expected = 11, ai("xmp", "XMP")
    marks = {"xmp", "parameters"}
    assert marks & {span.key or span.kind for span in find_spans(data, at_limit)}
    assert claims_with(data, MetadataSettings(max_chunks=at_limit)) == expected
    short = MetadataSettings(max_chunks=at_limit - 1)
    with capture_logs() as logs:
        assert not marks & {span.key or span.kind for span in find_spans(data, short.max_chunks)}
        assert claims_with(data, short) == [] and not sniff(data, short)
    assert logs == []
    assert "the walk stops there" in (MetadataSettings.model_fields["max_chunks"].description or "")


def test_malformed_lengths_and_bad_crcs() -> None:
    good = png_chunk(b"tEXt", b"parameters\x00" + INFOTEXT.encode())
    bad_crc = good[:-1] + bytes([good[-1] ^ 1])
    assert read_metadata(with_chunks(bad_crc), SETTINGS) == []
    too_long = struct.pack(">I", 0x7FFFFFF0) + good[4:]
    assert read_metadata(with_chunks(too_long), SETTINGS) == []
    jpeg = with_xmp("JPEG", source_type("trainedAlgorithmicMedia"))
    at = jpeg.find(b"http://ns.adobe.com/xap") - 2
    for length in (b"\x00\x00", b"\x00\x01", b"\xff\xff"):
        assert read_metadata(jpeg[:at] + length + jpeg[at + 2 :], SETTINGS) == []


@pytest.mark.parametrize(
    "raw", [b"", b"UNICODE\x00", b"UNICODE\x00\x00", b"JIS\x00\x00\x00\x00\x00abc", b"\xff\xfe\x00"]
)
def test_odd_user_comments_decode_without_raising(raw: bytes) -> None:
    assert isinstance(decode_user_comment(raw), str)


# ---------------------------------------------------------------- fuzzed files, plain files, settings


def marked_fixtures() -> list[bytes]:
    packet = source_type("trainedAlgorithmicMedia", 'Iptc4xmpExt:AISystemUsed="Imagen"')
    return [
        with_xmp("JPEG", packet),
        with_xmp("PNG", packet),
        with_xmp("WEBP", packet),
        png(("tEXt", "parameters", INFOTEXT), ("zTXt", "prompt", json.dumps(COMFY_PROMPT))),
        png(
            ("iTXt", "workflow", json.dumps(COMFY_WORKFLOW)),
            ("tEXt", "Software", "NovelAI"),
            ("tEXt", "Comment", '{"steps": 1, "seed": 2}'),
        ),
        encode("JPEG", exif=exif("Fooocus v2", b"UNICODE\x00" + INFOTEXT.encode("utf-16-be"))),
        encode("WEBP", exif=exif("NovelAI", b"ASCII\x00\x00\x00" + INFOTEXT.encode())),
        extended_xmp_jpeg(extension_segments(size=20_000)),
    ]


def mutate(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        choice = rng.random()
        at = rng.randrange(len(out)) if out else 0
        if choice < 0.5 and out:
            out[at] = rng.randrange(256)
        elif choice < 0.65:
            del out[at:]
        elif choice < 0.8:
            out[at:at] = rng.randbytes(rng.randint(1, 16))
        elif choice < 0.9:
            out[at:at] = out[at : at + rng.randint(1, 64)]
        else:
            out[at : at + 4] = rng.choice([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff\xff\xff"])
    return bytes(out)


def test_fuzzed_marked_files_never_raise() -> None:
    rng = random.Random(14)
    fixtures = marked_fixtures()
    assert all(read_metadata(data, SETTINGS) for data in fixtures)  # the seeds all carry a claim
    started = time.perf_counter()
    for _ in range(400):
        data = mutate(rng.choice(fixtures), rng)
        assert isinstance(sniff(data, SETTINGS), bool)
        assert all(isinstance(item, EvidenceItem) for item in read_metadata(data, SETTINGS))
    assert time.perf_counter() - started < 20


def test_a_failing_reader_is_logged_and_the_others_still_count(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(packet: bytes) -> list[EvidenceItem]:
        raise TypeError("reader bug")

    monkeypatch.setattr(metadata_module.xmp, "read_xmp", broken)
    data = png(
        ("iTXt", "XML:com.adobe.xmp", source_type("trainedAlgorithmicMedia").decode()), ("tEXt", "parameters", INFOTEXT)
    )
    with capture_logs() as logs:
        assert claims(data) == ai("generator_metadata", "A1111")
    assert [(log["event"], log["reader"]) for log in logs] == [("metadata reader failed", "xmp")]


@pytest.mark.parametrize(
    "data",
    [
        encode("JPEG"),
        encode("PNG"),
        encode("WEBP"),
        encode("JPEG", exif=exif(software="Ver.1.00", comment=b"\x00" * 8 + b" " * 40)),  # a camera's EXIF
        encode("PNG", pnginfo=PngImagePlugin.PngInfo()),
        png(("tEXt", "Comment", "holiday"), ("tEXt", "Creation Time", "2024")),
        encode("JPEG", xmp=xmp('xmp:CreatorTool="Adobe Lightroom">')),
        png(("iTXt", "XML:com.adobe.xmp", xmp('xmp:CreatorTool="Adobe Photoshop">').decode())),
        b"",
        b"GIF89a" + b"\x00" * 20,
        b"\xff\xd8",
        b"RIFF\xff\xff\xff\xffWEBP",
    ],
    ids=[
        "jpeg",
        "png",
        "webp",
        "camera-exif",
        "png-empty-info",
        "png-other-text",
        "lightroom-xmp",
        "photoshop-png-xmp",
        "empty",
        "gif",
        "soi",
        "riff",
    ],
)
def test_plain_files_give_nothing_and_the_sniff_says_no(data: bytes) -> None:
    assert not sniff(data, SETTINGS)
    assert read_metadata(data, SETTINGS) == []


def test_spans_of_a_jpeg_are_read_from_the_header_only() -> None:
    data = encode("JPEG", exif=exif("NovelAI"), xmp=source_type("digitalCapture"))
    spans = find_spans(data, SETTINGS.max_chunks)
    assert [span.kind for span in spans] == ["exif", "xmp"]
    assert max(span.end for span in spans) < data.find(b"\xff\xda")
    blobs = read_blobs(data, spans, SETTINGS)
    assert blobs.exif[0].startswith(b"MM\x00*") and blobs.xmp[0].startswith(b"<?xpacket")


def test_settings() -> None:
    assert (
        read_metadata(with_xmp("JPEG", source_type("trainedAlgorithmicMedia")), MetadataSettings(enabled=False)) == []
    )
    with pytest.raises(ValidationError):
        MetadataSettings(max_chunk=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        MetadataSettings(max_text_bytes=10)
    with pytest.raises(ValidationError):
        SETTINGS.enabled = False  # type: ignore[misc]
    assert all(field.description for field in MetadataSettings.model_fields.values())


def test_the_metadata_readers_import_only_what_the_room_allows() -> None:
    """The evidence room's metadata modules use errors, schemas, media and themselves, nothing above."""
    allowed = ("zoomguard.errors", "zoomguard.schemas", "zoomguard.media", "zoomguard.evidence")
    room = Path(metadata_module.__file__).parent
    for name in ("containers", "exif", "excerpts", "generators", "metadata", "settings", "xmp"):
        tree = ast.parse((room / f"{name}.py").read_text())
        modules = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        modules += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
        ours = [module for module in modules if module.startswith("zoomguard")]
        assert all(module.startswith(allowed) for module in ours), (name, ours)
