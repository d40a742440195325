"""C2PA Content Credentials on the raw upload: what its signed manifests declare about the source of the image.

Why: a generator that signs (OpenAI, Adobe Firefly, ...) declares `trainedAlgorithmicMedia` in its manifest, and a
camera that signs declares `digitalCapture`; read before any pixel, such a declaration is evidence the verdict
can cite. Reading is offline (no remote manifest, no OCSP) and bounded; hostile bytes give no evidence, never an
exception. The claim a reviewer sees is the IPTC digital source type of an action, in the active manifest or in
any ingredient's manifest (an AI image edited and re-signed declares its AI source only in the ingredient).

Time: signing offline means no time-stamp authority, so a manifest proves no signing time, and c2pa checks the
signing certificate's validity at the time of reading (it reports no `timeStamp.*` status then). A certificate
that has expired since makes the manifest Invalid (`signingCredential.expired`): not valid, not trusted, no
decision. c2pa refuses to sign outside a certificate's validity, so a not-yet-valid one only comes from a wrong
clock. For an ingredient, c2pa re-checks only the signer's trust: one that lapsed is reported untrusted (its
editor validated it when signing), so the claim stays valid but is no longer trusted.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import c2pa
import structlog
from cryptography import x509

from zoomguard.errors import ConfigError
from zoomguard.evidence.c2pa_sniff import sniff_c2pa
from zoomguard.evidence.settings import C2paSettings
from zoomguard.schemas.evidence import IPTC_SOURCE_TYPES, Claim, EvidenceItem, source_type_claim

log = structlog.get_logger("zoomguard.evidence")

_TRUSTED = "signingCredential.trusted"
_UNTRUSTED = "signingCredential.untrusted"


def load_anchors(settings: C2paSettings) -> str | None:
    """The PEM text of `settings.trust_anchors_pem` (None when unset), checked here: c2pa itself would only
    fail later, on every signed upload."""
    if not settings.trust_anchors_pem:
        return None
    path = Path(settings.trust_anchors_pem)
    try:
        text = path.read_text()
        x509.load_pem_x509_certificates(text.encode())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"C2PA trust anchors {path}: not a readable PEM bundle of certificates ({exc})") from None
    return text


class C2paReader:
    """Holds the offline c2pa context (built once: it parses the trust anchors) and reads uploads with it."""

    def __init__(self, settings: C2paSettings, anchors: str | None = None) -> None:
        self.settings = settings
        self._options: dict[str, Any] = {
            "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False, "verify_trust": True}
        }
        if anchors:
            self._options["trust"] = {"trust_anchors": anchors}
        self._context = c2pa.Context.from_dict(self._options)

    @property
    def context(self) -> c2pa.Context:
        """The library context; rebuilt in a forked child, where c2pa marks an inherited one invalid."""
        if not self._context.is_valid:
            self._context = c2pa.Context.from_dict(self._options)
        return self._context

    def read(self, data: bytes, mime: str) -> list[EvidenceItem]:
        """One item per claim (ai_generated, real) the store declares; [] without a manifest, or on any failure.
        Source types that are neither trained AI nor a capture (algorithmicMedia: procedural; humanEdits, ...)
        claim nothing."""
        if not self.settings.enabled or len(data) > self.settings.max_bytes:
            return []
        container = sniff_c2pa(data)
        if container is None:
            return []
        try:
            # the library is told the container the sniff found; `mime` is the upload's word, for the log only
            with c2pa.Reader(container, io.BytesIO(data), context=self.context) as reader:
                store = json.loads(reader.json())
            return _evidence(store)
        except c2pa.C2paError.ManifestNotFound:
            return []
        except Exception as exc:  # hostile bytes reach native code: whatever it raises is no evidence
            log.warning("c2pa manifest unreadable", mime=mime, container=container, error=repr(exc)[:300])
            return []


@lru_cache(maxsize=4)
def _reader(settings: C2paSettings, anchors: str | None) -> C2paReader:
    return C2paReader(settings, anchors)


def read_c2pa(data: bytes, mime: str, settings: C2paSettings, anchors: str | None) -> list[EvidenceItem]:
    """`C2paReader(settings, anchors).read(data, mime)`, with the reader cached per (settings, anchors)."""
    return _reader(settings, anchors).read(data, mime)


def _evidence(store: dict[str, Any]) -> list[EvidenceItem]:
    """The strongest item per claim (trusted, then valid, then the first found from the active manifest)."""
    best: dict[Claim, EvidenceItem] = {}
    for manifest, valid, trusted, where in _walk(store):
        for term, action in _source_types(manifest):
            claim = source_type_claim(term)
            if claim is None:  # algorithmicMedia (procedural, not trained), human edits, ...: neither AI nor capture
                continue
            item = EvidenceItem(
                kind="c2pa",
                claim=claim,
                valid=valid,
                trusted=trusted,
                source=_source(manifest),
                detail=f"{term.removeprefix(IPTC_SOURCE_TYPES)} ({action}) in {where}",
            )
            kept = best.get(claim)
            if kept is None or (item.trusted, item.valid) > (kept.trusted, kept.valid):
                best[claim] = item
    return list(best.values())


def _walk(store: dict[str, Any]) -> Iterator[tuple[dict[str, Any], bool, bool, str]]:
    """Every manifest once, with its validity and trust, depth first down the ingredients of the active one.

    A manifest is valid when every manifest from the upload down to it validates (c2pa's state for the active
    one; for an ingredient, what its parent recorded at signing plus what the reader re-checked now), and
    trusted when it is valid and each of those signers chains to an anchor (as c2pa's Trusted state).
    Manifests no ingredient reaches are bound to nothing: they come last, never valid.
    """
    manifests = _dict(store.get("manifests"))
    results = _dict(store.get("validation_results"))
    deltas = {
        _dict(d).get("ingredientAssertionURI"): _dict(_dict(d).get("validationDeltas"))
        for d in _list(results.get("ingredientDeltas"))
    }
    active, state = store.get("active_manifest"), store.get("validation_state")
    todo: list[tuple[Any, bool, bool, str]] = [
        (label, False, False, f"unreferenced manifest {label}") for label in reversed(manifests)
    ]
    todo.append((active, state in ("Valid", "Trusted"), state == "Trusted", f"active manifest {active}"))
    seen: set[str] = set()
    while todo:
        label, valid, trusted, where = todo.pop()
        if not isinstance(label, str) or label in seen or label not in manifests:
            continue
        seen.add(label)
        manifest = _dict(manifests[label])
        yield manifest, valid, trusted, where
        for ingredient in map(_dict, _list(manifest.get("ingredients"))):
            stored = _dict(_dict(ingredient.get("validation_results")).get("activeManifest"))
            delta = deltas.get(f"self#jumbf=/c2pa/{label}/c2pa.assertions/{ingredient.get('label')}", {})
            child, child_valid = ingredient.get("active_manifest"), valid and _intact(stored, delta)
            child_trusted = child_valid and trusted and _trusted(stored, delta)
            todo.append((child, child_valid, child_trusted, f"ingredient manifest {child} of {label}"))


def _source_types(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    """(digitalSourceType, action name) of every action of every `c2pa.actions*` assertion (v1 and v2)."""
    found = []
    for assertion in map(_dict, _list(manifest.get("assertions"))):
        if not str(assertion.get("label", "")).startswith("c2pa.actions"):
            continue
        for action in map(_dict, _list(_dict(assertion.get("data")).get("actions"))):
            term = action.get("digitalSourceType")
            if isinstance(term, str):
                found.append((term, str(action.get("action", "?"))))
    return found


def _codes(results: dict[str, Any], outcome: str) -> set[str]:
    return {str(_dict(status).get("code")) for status in _list(results.get(outcome))}


def _intact(stored: dict[str, Any], delta: dict[str, Any]) -> bool:
    """No failure but an untrusted signer, as c2pa's own Valid state: hashes and signature check."""
    return not (_codes(stored, "failure") | _codes(delta, "failure")) - {_UNTRUSTED}


def _trusted(stored: dict[str, Any], delta: dict[str, Any]) -> bool:
    """The reader's re-check of the signer against our anchors (a delta) overrides what the parent recorded."""
    for results in (delta, stored):
        if _TRUSTED in _codes(results, "success"):
            return True
        if _UNTRUSTED in _codes(results, "failure"):
            return False
    return False


def _source(manifest: dict[str, Any]) -> str:
    """The signing certificate's common name, its issuer's organisation, and the claim generator."""
    signature = _dict(manifest.get("signature_info"))
    name, issuer = signature.get("common_name"), signature.get("issuer")
    signer = f"{name} ({issuer})" if name and issuer else str(name or issuer or "unnamed signer")
    generators = _list(manifest.get("claim_generator_info"))
    info = _dict(generators[0]) if generators else {}
    generator = " ".join(str(info[key]) for key in ("name", "version") if info.get(key))
    return f"{signer} via {generator or manifest.get('claim_generator') or 'unnamed generator'}"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
