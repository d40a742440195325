"""C2PA Content Credentials on the raw upload: the sniff, the offline reader, and hostile bytes.

Every fixture is made here: a throw-away ES256 chain (root CA + leaf with the C2PA claim-signing EKU), images
from Pillow, manifests signed offline by c2pa's own Builder (no time-stamp authority).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import random
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import c2pa
import pytest
from cryptography import x509
from PIL import Image
from structlog.testing import capture_logs

from zoomguard.errors import ConfigError
from zoomguard.evidence.c2pa_reader import C2paReader, load_anchors, read_c2pa
from zoomguard.evidence.c2pa_sniff import sniff_c2pa
from zoomguard.evidence.decide import conclusive
from zoomguard.evidence.demo_credentials import SIGNING_CONTEXT, Chain, make_chain, sign
from zoomguard.evidence.settings import C2paSettings

Kind = c2pa.C2paDigitalSourceType
MIMES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "TIFF": "image/tiff", "AVIF": "image/avif"}


@pytest.fixture(scope="module")
def generator() -> Chain:
    return make_chain("Generator")


@pytest.fixture(scope="module")
def editor() -> Chain:
    return make_chain("Editor")


def image(fmt: str, size: tuple[int, int] = (96, 64), seed: int = 0) -> bytes:
    """Noise, so that the image data is large enough to flip a byte in."""
    pixels = random.Random(seed).randbytes(size[0] * size[1] * 3)
    out = io.BytesIO()
    Image.frombytes("RGB", size, pixels).save(out, fmt)
    return out.getvalue()


def flip_image_byte(data: bytes, fmt: str) -> bytes:
    """One bit flipped inside the compressed image data, away from the manifest."""
    at = {"PNG": data.find(b"IDAT") + 40, "JPEG": data.rfind(b"\xff\xda") + 40, "WEBP": data.find(b"VP8 ") + 40}[fmt]
    out = bytearray(data)
    out[at] ^= 0x01
    return bytes(out)


def read(data: bytes, fmt: str = "PNG", anchors: str | None = None) -> list:
    return C2paReader(C2paSettings(), anchors).read(data, MIMES[fmt])


@pytest.fixture(scope="module")
def ai_png(generator: Chain) -> bytes:
    return sign(generator, image("PNG"), "image/png")


@pytest.fixture(scope="module")
def ai_jpeg(generator: Chain) -> bytes:
    return sign(generator, image("JPEG"), "image/jpeg")


# --- what signed manifests declare ---


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "TIFF", "AVIF"])
def test_a_signed_ai_image_is_one_valid_untrusted_item(generator: Chain, fmt: str) -> None:
    signed = sign(generator, image(fmt), MIMES[fmt])
    assert sniff_c2pa(signed) == MIMES[fmt]
    [item] = read(signed, fmt)
    assert (item.kind, item.claim, item.valid, item.trusted) == ("c2pa", "ai_generated", True, False)
    assert item.source == "Generator Signer (Generator Org) via Generator App 1.0"
    assert item.detail.startswith("trainedAlgorithmicMedia (c2pa.created) in active manifest urn:c2pa:")


def test_the_root_as_trust_anchor_makes_it_trusted(generator: Chain, ai_png: bytes) -> None:
    [item] = read(ai_png, anchors=generator.root_pem)
    assert (item.claim, item.valid, item.trusted) == ("ai_generated", True, True)


def test_another_root_does_not(generator: Chain, editor: Chain, ai_png: bytes) -> None:
    [item] = read(ai_png, anchors=editor.root_pem)
    assert (item.valid, item.trusted) == (True, False)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_one_flipped_image_byte_still_reports_the_claim_as_invalid(generator: Chain, fmt: str) -> None:
    tampered = flip_image_byte(sign(generator, image(fmt), MIMES[fmt]), fmt)
    [item] = read(tampered, fmt, anchors=generator.root_pem)
    assert (item.claim, item.valid, item.trusted) == ("ai_generated", False, False)


def test_an_ai_ingredient_under_an_editors_manifest_is_found(generator: Chain, editor: Chain, ai_jpeg: bytes) -> None:
    """The editor's own actions (opened, color adjustments) declare no source type: the AI one is the ingredient's."""
    edited = sign(editor, ai_jpeg, "image/jpeg", edit=True)
    [item] = read(edited, "JPEG")
    assert (item.claim, item.valid, item.trusted) == ("ai_generated", True, False)
    assert item.source.startswith("Generator Signer")
    assert " in ingredient manifest urn:c2pa:" in item.detail


@pytest.mark.parametrize(
    ("anchors", "trusted"),
    [(("generator",), False), (("editor",), False), (("generator", "editor"), True)],
)
def test_an_ingredient_is_trusted_only_when_every_signer_above_it_is(
    generator: Chain, editor: Chain, ai_jpeg: bytes, anchors: tuple[str, ...], trusted: bool
) -> None:
    edited = sign(editor, ai_jpeg, "image/jpeg", edit=True)
    chains = {"generator": generator, "editor": editor}
    [item] = read(edited, "JPEG", anchors="".join(chains[name].root_pem for name in anchors))
    assert (item.valid, item.trusted) == (True, trusted)


def test_a_tampered_ingredient_under_a_valid_editor_is_invalid(generator: Chain, editor: Chain, ai_jpeg: bytes) -> None:
    """c2pa says Valid for the store (the editor's signature is fine); the ingredient's recorded hash mismatch
    is what makes its claim invalid."""
    edited = sign(editor, flip_image_byte(ai_jpeg, "JPEG"), "image/jpeg", edit=True)
    [item] = read(edited, "JPEG", anchors=generator.root_pem + editor.root_pem)
    assert (item.claim, item.valid, item.trusted) == ("ai_generated", False, False)


def test_a_camera_capture_claims_real(generator: Chain) -> None:
    [item] = read(sign(generator, image("JPEG"), "image/jpeg", Kind.DIGITAL_CAPTURE), "JPEG")
    assert (item.claim, item.valid) == ("real", True)
    assert item.detail.startswith("digitalCapture")


def test_algorithmic_media_claims_nothing(generator: Chain) -> None:
    """Procedural images (algorithmicMedia) are not trained AI: no ai_generated item, no real one either."""
    assert read(sign(generator, image("PNG"), "image/png", Kind.ALGORITHMIC_MEDIA)) == []


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "TIFF", "AVIF", "GIF"])
def test_a_plain_image_has_no_evidence_and_the_sniff_says_no(fmt: str) -> None:
    data = image(fmt)
    assert sniff_c2pa(data) is None
    assert C2paReader(C2paSettings()).read(data, f"image/{fmt.lower()}") == []


def test_random_bytes_never_sniff() -> None:
    rng = random.Random(7)
    blobs = [rng.randbytes(rng.randrange(1, 4096)) for _ in range(2000)]
    blobs += [
        prefix + rng.randbytes(2048)
        for prefix in (
            b"\xff\xd8",
            b"\x89PNG\r\n\x1a\n",
            b"RIFF\0\0\0\0WEBP",
            b"\0\0\0\x18ftypavif",
            b"II*\0\x08\0\0\0",
        )
    ]
    assert [blob[:16] for blob in blobs if sniff_c2pa(blob)] == []


def test_a_resaved_signed_image_has_no_evidence(ai_png: bytes, ai_jpeg: bytes) -> None:
    for signed, fmt in ((ai_png, "PNG"), (ai_jpeg, "JPEG")):
        out = io.BytesIO()
        Image.open(io.BytesIO(signed)).save(out, fmt)
        assert sniff_c2pa(out.getvalue()) is None
        assert read(out.getvalue(), fmt) == []


def test_over_max_bytes_or_disabled_nothing_is_read(ai_png: bytes) -> None:
    assert C2paReader(C2paSettings(max_bytes=len(ai_png) - 1)).read(ai_png, "image/png") == []
    assert C2paReader(C2paSettings(enabled=False)).read(ai_png, "image/png") == []
    assert len(C2paReader(C2paSettings(max_bytes=len(ai_png))).read(ai_png, "image/png")) == 1


def test_read_c2pa_is_the_cached_reader(generator: Chain, ai_png: bytes) -> None:
    settings = C2paSettings()
    assert read_c2pa(ai_png, "image/png", settings, generator.root_pem) == read(ai_png, anchors=generator.root_pem)
    assert read_c2pa(ai_png, "image/jpeg", settings, None)[0].trusted is False


def test_the_mime_an_upload_claims_does_not_matter(ai_png: bytes) -> None:
    assert C2paReader(C2paSettings()).read(ai_png, "image/jpeg") == read(ai_png)


# --- trust anchors from settings ---


def test_load_anchors(tmp_path: Path, generator: Chain) -> None:
    assert load_anchors(C2paSettings()) is None
    bundle = tmp_path / "anchors.pem"
    bundle.write_text(generator.root_pem)
    assert load_anchors(C2paSettings(trust_anchors_pem=str(bundle))) == generator.root_pem
    bundle.write_text("not a certificate")
    with pytest.raises(ConfigError, match="not a readable PEM bundle"):
        load_anchors(C2paSettings(trust_anchors_pem=str(bundle)))
    with pytest.raises(ConfigError):
        load_anchors(C2paSettings(trust_anchors_pem=str(tmp_path / "missing.pem")))


# --- hostile bytes: a list back, never an exception ---


def test_truncated_signed_files(ai_png: bytes, ai_jpeg: bytes) -> None:
    reader = C2paReader(C2paSettings())
    for signed, mime in ((ai_png, "image/png"), (ai_jpeg, "image/jpeg")):
        cuts = sorted({*range(0, len(signed), max(1, len(signed) // 60)), *range(30, 400, 7), len(signed) - 1})
        for cut in cuts:
            assert isinstance(reader.read(signed[:cut], mime), list)


def test_random_byte_flips_in_a_signed_file(ai_png: bytes, ai_jpeg: bytes) -> None:
    rng = random.Random(14)
    reader = C2paReader(C2paSettings())
    for signed, mime in ((ai_png, "image/png"), (ai_jpeg, "image/jpeg")):
        store = signed.find(b"jumb") - 4  # most mutations inside the manifest store, where the parsing is
        for _ in range(150):
            mutated = bytearray(signed)
            for _ in range(rng.randrange(1, 5)):
                at = (
                    rng.randrange(store, min(len(signed), store + 4000))
                    if rng.random() < 0.8
                    else rng.randrange(len(signed))
                )
                mutated[at] = rng.randrange(256)
            items = reader.read(bytes(mutated), mime)
            assert isinstance(items, list)
            assert all(item.kind == "c2pa" for item in items)


def forged_store(rng: random.Random) -> bytes:
    """A JUMBF header that passes the sniff, then garbage."""
    body = (
        b"jumd"
        + b"c2pa\x00\x11\x00\x10\x80\x00\x00\xaa\x00\x38\x9b\x71"
        + b"\x03c2pa\x00"
        + rng.randbytes(rng.randrange(0, 3000))
    )
    return struct.pack(">I", rng.randrange(0, 1 << 32)) + b"jumb" + struct.pack(">I", 8 + 16 + 6) + body


def test_garbage_behind_a_forged_header(ai_png: bytes) -> None:
    rng = random.Random(3)
    reader = C2paReader(C2paSettings())
    png, jpeg = image("PNG"), image("JPEG")
    with capture_logs() as logs:
        for _ in range(100):
            store = forged_store(rng)
            forged_png = png[:33] + struct.pack(">I", len(store)) + b"caBX" + store + b"\0\0\0\0" + png[33:]
            app11 = b"JP\x02\x11\x00\x00\x00\x01" + store[:60000]
            forged_jpeg = jpeg[:2] + b"\xff\xeb" + struct.pack(">H", len(app11) + 2) + app11 + jpeg[2:]
            for data, mime in ((forged_png, "image/png"), (forged_jpeg, "image/jpeg")):
                assert sniff_c2pa(data) == mime
                assert reader.read(data, mime) == []
    assert logs and {entry["event"] for entry in logs} == {"c2pa manifest unreadable"}
    assert all(entry["log_level"] == "warning" for entry in logs)


# --- offline: nothing leaves the process ---


@pytest.fixture
def listener() -> Iterator[tuple[str, list[bytes]]]:
    """A local HTTP-ish server that records what the native library would fetch."""
    server = socket.create_server(("127.0.0.1", 0))
    requests: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                requests.append(conn.recv(200))

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}", requests
    server.close()


def test_reads_do_not_touch_python_sockets(
    monkeypatch: pytest.MonkeyPatch, generator: Chain, editor: Chain, ai_png: bytes, ai_jpeg: bytes
) -> None:
    edited = sign(editor, ai_jpeg, "image/jpeg", edit=True)

    def refuse(*_args: object) -> None:
        raise AssertionError("a read tried to connect")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    reader = C2paReader(C2paSettings(), generator.root_pem)
    assert [item.trusted for item in reader.read(ai_png, "image/png")] == [True]
    assert [item.claim for item in reader.read(edited, "image/jpeg")] == ["ai_generated"]


def test_no_remote_manifest_fetch(listener: tuple[str, list[bytes]], generator: Chain) -> None:
    """The native library fetches a remote manifest by default (the control); the reader's context never does."""
    url, requests = listener
    remote_only = sign(generator, image("JPEG"), "image/jpeg", remote_url=f"{url}/manifest.c2pa")
    assert sniff_c2pa(remote_only) is None  # nothing embedded: the reader itself never even calls the library
    with pytest.raises(c2pa.C2paError):
        c2pa.Reader("image/jpeg", io.BytesIO(remote_only), context=C2paReader(C2paSettings()).context)
    time.sleep(0.2)
    assert requests == []
    with pytest.raises(c2pa.C2paError):
        c2pa.Reader("image/jpeg", io.BytesIO(remote_only), context=c2pa.Context())
    deadline = time.monotonic() + 5
    while not requests and time.monotonic() < deadline:
        time.sleep(0.05)
    assert requests and requests[0].startswith(b"GET /manifest.c2pa")


def test_no_ocsp_fetch(listener: tuple[str, list[bytes]]) -> None:
    url, requests = listener
    chain = make_chain("Revocable", ocsp_url=f"{url}/ocsp")
    signed = sign(chain, image("PNG"), "image/png")
    [item] = C2paReader(C2paSettings(), chain.root_pem).read(signed, "image/png")
    assert (item.valid, item.trusted) == (True, True)
    time.sleep(0.2)
    assert requests == []


def test_a_forked_child_rebuilds_the_context(ai_png: bytes) -> None:
    """c2pa marks a context inherited across fork invalid; the reader makes a new one in the child."""
    reader = C2paReader(C2paSettings())
    assert len(reader.read(ai_png, "image/png")) == 1
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write_end, str(len(reader.read(ai_png, "image/png"))).encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    assert os.read(read_end, 10) == b"1"
    os.close(read_end)


# --- a PNG store after the image data ---


def png_chunks(data: bytes) -> list[bytes]:
    at, chunks = 8, []
    while at < len(data):
        (length,) = struct.unpack_from(">I", data, at)
        chunks.append(data[at : at + 12 + length])
        at += 12 + length
    return chunks


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def store_after_idat(signed: bytes, idat_pieces: int = 1) -> bytes:
    """The caBX chunk moved behind the image data, just before IEND (where other writers put it), the image data
    optionally cut into `idat_pieces` IDAT chunks."""
    chunks = png_chunks(signed)
    store = next(chunk for chunk in chunks if chunk[4:8] == b"caBX")
    idat = b"".join(chunk[8:-4] for chunk in chunks if chunk[4:8] == b"IDAT")
    step = -(-len(idat) // idat_pieces)
    pieces = [png_chunk(b"IDAT", idat[at : at + step]) for at in range(0, len(idat), step)]
    head = [chunk for chunk in chunks if chunk[4:8] not in (b"caBX", b"IDAT", b"IEND")]
    return signed[:8] + b"".join(head + pieces) + store + chunks[-1]


def chunk_kinds(data: bytes) -> list[bytes]:
    return [chunk[4:8] for chunk in png_chunks(data)]


def test_a_store_after_the_image_data_is_read_as_c2pa_reads_it(ai_png: bytes) -> None:
    """c2pa-rs writes caBX right after IHDR but reads it wherever it lies (the specification only recommends it
    before IDAT). Moved, its data hash no longer matches: c2pa reads it as Invalid, and so does the reader."""
    moved = store_after_idat(ai_png)
    assert chunk_kinds(moved) == [b"IHDR", b"IDAT", b"caBX", b"IEND"]
    with c2pa.Reader("image/png", io.BytesIO(moved), context=C2paReader(C2paSettings()).context) as reader:
        assert reader.get_validation_state() == "Invalid"
        failures = {entry["code"] for entry in (reader.get_validation_results() or {})["activeManifest"]["failure"]}
    assert "assertion.dataHash.mismatch" in failures
    assert sniff_c2pa(moved) == "image/png"
    assert [(item.claim, item.valid, item.trusted) for item in read(moved)] == [("ai_generated", False, False)]


def test_the_png_walk_reaches_a_store_behind_thousands_of_idat_chunks(ai_png: bytes) -> None:
    """A 50 MB PNG in libpng's 8 kB chunks has ~6,400 of them; the walk is bounded at 16,384 chunks."""
    many = store_after_idat(ai_png, idat_pieces=6400)
    assert chunk_kinds(many).count(b"IDAT") > 6000
    assert sniff_c2pa(many) == "image/png"
    chunks = png_chunks(ai_png)
    store = next(chunk for chunk in chunks if chunk[4:8] == b"caBX")
    flood = ai_png[:8] + chunks[0] + png_chunk(b"IDAT", b"") * 20_000 + store + chunks[-1]
    started = time.perf_counter()
    assert sniff_c2pa(flood) is None  # past the bound: not seen, and quickly
    assert time.perf_counter() - started < 0.5


def test_two_stores_are_no_evidence(ai_png: bytes) -> None:
    """c2pa refuses a PNG with two caBX chunks ("more than one manifest store"): no evidence, a warning."""
    chunks = png_chunks(ai_png)
    store = next(chunk for chunk in chunks if chunk[4:8] == b"caBX")
    twice = ai_png[:8] + b"".join(chunks[:-1]) + store + chunks[-1]
    assert sniff_c2pa(twice) == "image/png"
    with capture_logs() as logs:
        assert read(twice) == []
    assert [entry["event"] for entry in logs] == ["c2pa manifest unreadable"]


# --- time: no time-stamp offline, and certificates that expire ---


def validation(data: bytes, anchors: str | None = None) -> tuple[str, dict[str, set[str]], dict[str, Any]]:
    """c2pa's own view with the reader's offline context: state, codes by outcome, the active signature info."""
    context = C2paReader(C2paSettings(), anchors).context
    with c2pa.Reader("image/png", io.BytesIO(data), context=context) as reader:
        state = reader.get_validation_state() or ""
        results = (reader.get_validation_results() or {}).get("activeManifest", {})
        store = json.loads(reader.json())
    codes = {outcome: {entry["code"] for entry in results.get(outcome, [])} for outcome in ("success", "failure")}
    return state, codes, store["manifests"][store["active_manifest"]].get("signature_info", {})


def test_offline_signatures_carry_no_time_stamp(generator: Chain, ai_png: bytes) -> None:
    """Signed with no TSA (offline), a manifest has no trusted time: c2pa reports no timeStamp.* status and no
    signing time, and checks the certificate's validity at the time of reading (claimSignature.insideValidity)."""
    for anchors in (None, generator.root_pem):
        state, codes, signature = validation(ai_png, anchors)
        assert state == ("Trusted" if anchors else "Valid")
        assert not [code for outcome in codes.values() for code in outcome if code.startswith("timeStamp")]
        assert "claimSignature.insideValidity" in codes["success"]
        assert "time" not in signature and signature["common_name"] == "Generator Signer"


@pytest.mark.parametrize(
    "validity",
    [(dt.timedelta(days=-60), dt.timedelta(days=-30)), (dt.timedelta(days=10), dt.timedelta(days=40))],
    ids=["expired", "not-yet-valid"],
)
def test_c2pa_refuses_to_sign_outside_the_certificates_validity(validity: tuple[dt.timedelta, dt.timedelta]) -> None:
    """So an expired or not-yet-valid signature never comes from this library: only from a certificate that
    lapsed after signing (below), or from a signer whose clock was wrong (not reproducible offline)."""
    chain = make_chain("Lapsed", leaf_validity=validity)
    with pytest.raises(c2pa.C2paError, match="not valid at time of signing"):
        sign(chain, image("PNG"), "image/png")


@pytest.fixture(scope="module")
def lapsed(editor: Chain) -> dict[str, Any]:
    """A generator whose certificate lapses two seconds after it signs, read before and after; and an editor's
    manifest (long-lived certificate, trusting that generator when it signed) over the generated image."""
    chain = make_chain("Short-lived", leaf_validity=(dt.timedelta(days=-1), dt.timedelta(seconds=2)))
    ai = sign(chain, image("PNG"), "image/png")
    options = {**SIGNING_CONTEXT, "trust": {"trust_anchors": chain.root_pem}}
    builder = c2pa.Builder({"claim_generator_info": [{"name": "Editor App"}]}, context=c2pa.Context.from_dict(options))
    builder.set_intent(c2pa.C2paBuilderIntent.EDIT)
    builder.add_ingredient({"title": "parent", "relationship": "parentOf"}, "image/png", io.BytesIO(ai))
    builder.add_action({"action": "c2pa.color_adjustments"})
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, editor.pem, editor.key_pem, None))
    out = io.BytesIO()
    builder.sign(signer, "image/png", io.BytesIO(ai), out)
    edited, anchors = out.getvalue(), chain.root_pem + editor.root_pem
    before = {"ai": read(ai, anchors=anchors), "edited": read(edited, anchors=anchors), "state": validation(ai)[0]}
    expires = x509.load_pem_x509_certificates(chain.pem)[0].not_valid_after_utc
    time.sleep(max(0.0, (expires - dt.datetime.now(dt.UTC)).total_seconds()) + 1.2)
    return {"ai": ai, "edited": edited, "anchors": anchors, "before": before}


def test_a_signature_whose_certificate_has_expired_is_invalid(lapsed: dict[str, Any]) -> None:
    """No time-stamp says it was signed in time, so c2pa judges the certificate now: expired, Invalid. The reader
    reports the claim as not valid and not trusted, and it decides nothing."""
    [before] = lapsed["before"]["ai"]
    assert (before.valid, before.trusted) == (True, True)
    for anchors in (None, lapsed["anchors"]):
        state, codes, _ = validation(lapsed["ai"], anchors)
        assert state == "Invalid" and "signingCredential.expired" in codes["failure"]
        items = read(lapsed["ai"], anchors=anchors)
        assert [(item.claim, item.valid, item.trusted) for item in items] == [("ai_generated", False, False)]
        assert conclusive(items) == []


def test_an_ingredient_whose_signer_expired_keeps_its_validity_and_loses_trust(lapsed: dict[str, Any]) -> None:
    """Under a valid editor's manifest, c2pa re-checks the ingredient's signer: untrusted now (no "expired" code),
    and the store is Valid, no longer Trusted. The ingredient's signature and hashes were checked by the editor
    when it signed, and still match: the claim stays valid (it still decides), but is no longer trusted."""
    [before] = lapsed["before"]["edited"]
    assert "ingredient manifest" in before.detail and (before.valid, before.trusted) == (True, True)
    [after] = read(lapsed["edited"], anchors=lapsed["anchors"])
    assert (after.claim, after.valid, after.trusted) == ("ai_generated", True, False)
    assert validation(lapsed["edited"], lapsed["anchors"])[0] == "Valid"
