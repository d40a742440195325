"""IPTC DigitalSourceType in an XMP packet: the field Adobe, Google, Meta and others set on generated images.

Parsed only with defusedxml, DTDs refused outright: an XMP packet never needs one, and refusing the DOCTYPE
refuses every entity with it (billion laughs, external file:// or http:// entities), before anything expands.
CreatorTool names the software that last saved the file, which says nothing of how the pixels were made: it is
shown as the source of a source-type claim, never a claim of its own. A JPEG's Extended XMP (put together in
`containers`) is read with the standard packet that names its GUID in `xmpNote:HasExtendedXMP`, as one packet.
"""

from __future__ import annotations

from collections.abc import Mapping
from xml.etree.ElementTree import Element, ParseError

import structlog
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from zoomguard.evidence.excerpts import excerpt
from zoomguard.schemas.evidence import IPTC_SOURCE_TYPES, EvidenceItem, source_type_claim

log = structlog.get_logger("zoomguard.evidence")

IPTC_EXT = "{http://iptc.org/std/Iptc4xmpExt/2008-02-29/}"
XMP_BASIC = "{http://ns.adobe.com/xap/1.0/}"
RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
SOURCE_TYPE = IPTC_EXT + "DigitalSourceType"
AI_SYSTEM = IPTC_EXT + "AISystemUsed"
CREATOR_TOOL = XMP_BASIC + "CreatorTool"
HAS_EXTENDED_XMP = "{http://ns.adobe.com/xmp/note/}HasExtendedXMP"
SNIFF_MARKERS = (b"DigitalSourceType",)  # a packet without the property name cannot hold the claim


def read_xmp(packet: bytes, extensions: Mapping[str, bytes] | None = None) -> list[EvidenceItem]:
    """One item per distinct AI or capture source type in the packet, and in the extension (of `extensions`, by
    GUID) that its HasExtendedXMP names; none for other terms or a refused packet."""
    root = _parse(packet)
    if root is None:
        return []
    roots = [root]
    guid = next(iter(_values(root, HAS_EXTENDED_XMP)), None)
    extension = extensions.get(guid) if extensions and guid else None
    if extension is not None and (extended := _parse(extension)) is not None:
        roots.append(extended)
    terms = [term for tree in roots for term in _values(tree, SOURCE_TYPE)]
    names = [name for prop in (AI_SYSTEM, CREATOR_TOOL) for tree in roots for name in _values(tree, prop)]
    source = next(iter(names), "XMP")
    items: list[EvidenceItem] = []
    for value in dict.fromkeys(terms):
        claim = source_type_claim(value)
        if claim is None:
            continue
        term = value.strip().removeprefix(IPTC_SOURCE_TYPES).rstrip("/")
        item = EvidenceItem(
            kind="xmp", claim=claim, valid=True, trusted=False, source=excerpt(source, 100), detail=term
        )
        if item not in items:
            items.append(item)
    return items


def _parse(packet: bytes) -> Element | None:
    try:
        return fromstring(packet.strip(b"\x00 \t\r\n"), forbid_dtd=True)
    except (DefusedXmlException, ParseError) as exc:
        log.warning("xmp packet refused", reason=type(exc).__name__, bytes=len(packet))
        return None


def _values(root: Element, name: str) -> list[str]:
    """Every value of a simple property, written either way XMP allows: an attribute of any element (usually
    rdf:Description), or an element whose text (or an rdf:li inside it) or rdf:resource holds the value."""
    found = [value for element in root.iter() if (value := element.get(name)) is not None]
    for element in root.iter(name):
        text = element.get(RDF + "resource") or "".join(element.itertext())
        found.append(text)
    return [value.strip() for value in found if value.strip()]
