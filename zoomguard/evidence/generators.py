"""Generator metadata: what image tools write about their own output, each recognised by its format, not its name.

A chunk called `parameters` or `prompt` is common (image editors, scrapers, other apps use the same keys); only
the generator's own structure makes it evidence. The rules, each the least that the tool always writes:

- A1111 / Forge infotext (PNG `parameters`, or EXIF UserComment for JPEG/WebP): a line that starts with
  `Steps: <int>, ` and holds the pairs `Sampler: <value>` and `Seed: <int>` (each at the line start or after
  `, `). The tool writes all generation settings on that one line; "Forge" when its `Version:` starts `f<digit>`.
- ComfyUI `prompt`: a non-empty JSON object whose every value is an object with a string `class_type`;
  `workflow`: a JSON object whose `nodes` is a non-empty list of objects each with a string `type`.
- InvokeAI `invokeai_metadata`: a JSON object with two or more of its core keys; `invokeai_graph`: a JSON
  object whose `nodes` maps ids to objects each with a string `type`.
- NovelAI: text `Software` exactly "NovelAI" and `Comment` a JSON object with two or more of its settings.
- SwarmUI: `parameters` a JSON object holding a `sui_image_params` object.
- EXIF Software naming a generator that writes its name there in its own source code (GENERATOR_SOFTWARE);
  editors and cameras (Lightroom, Photoshop, firmware) are not evidence.

The detail is a short, cleaned excerpt (the Steps line, node types, a few settings), never the prompt.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from zoomguard.evidence.containers import Blobs
from zoomguard.evidence.excerpts import excerpt
from zoomguard.evidence.exif import decode_user_comment, read_exif
from zoomguard.schemas.evidence import EvidenceItem

# names as the tools write them at the start of EXIF Software; Fooocus writes "Fooocus v<version>"
GENERATOR_SOFTWARE = ("NovelAI", "Fooocus")
TEXT_KEYS = frozenset({"parameters", "prompt", "workflow", "invokeai_metadata", "invokeai_graph", "Software"})
# byte markers that an EXIF blob must hold for the generator rules to have anything to read
SNIFF_MARKERS = (
    b"UNICODE\x00",
    b"ASCII\x00\x00\x00",
    b"Steps: ",
    b"sui_image_params",
    *(name.encode() for name in GENERATOR_SOFTWARE),
)

_STEPS_LINE = re.compile(r"^Steps: \d+, .*$", re.MULTILINE)
_SAMPLER = re.compile(r"(?:^|, )Sampler: [^,\s]")
_SEED = re.compile(r"(?:^|, )Seed: -?\d+(?:,|$)")
_FORGE = re.compile(r"(?:^|, )Version: f\d")
_INVOKE_KEYS = frozenset(
    {"generation_mode", "positive_prompt", "negative_prompt", "seed", "steps", "cfg_scale", "scheduler", "model"}
)
_NOVELAI_KEYS = frozenset({"steps", "sampler", "seed", "scale", "uc", "strength", "noise", "n_samples"})


def read_generators(blobs: Blobs) -> list[EvidenceItem]:
    """Every generator whose format is found in the PNG text chunks or the EXIF blobs, one item per generator."""
    found: dict[str, EvidenceItem] = {}
    for source, detail in _texts(blobs):
        found.setdefault(source, _item(source, detail))
    for blob in blobs.exif:
        fields = read_exif(blob)
        if fields.software is not None and (name := _generator_software(fields.software)) is not None:
            found.setdefault(name, _item(name, "Software: " + fields.software))
        if fields.user_comment is not None:
            text = decode_user_comment(fields.user_comment)
            for rule in (_infotext, _swarmui):
                if (hit := rule(text)) is not None:
                    found.setdefault(hit[0], _item(*hit))
    return list(found.values())


def _item(source: str, detail: str) -> EvidenceItem:
    return EvidenceItem(
        kind="generator_metadata", claim="ai_generated", valid=True, source=source, detail=excerpt(detail)
    )


def _texts(blobs: Blobs) -> Iterable[tuple[str, str]]:
    rules: tuple[tuple[str, Callable[[str], tuple[str, str] | None]], ...] = (
        ("parameters", _infotext),
        ("parameters", _swarmui),
        ("prompt", _comfy_prompt),
        ("workflow", _comfy_workflow),
        ("invokeai_metadata", _invoke_metadata),
        ("invokeai_graph", _invoke_graph),
    )
    for key, rule in rules:
        for name, value in blobs.texts:
            if name == key and (hit := rule(value)) is not None:
                yield hit
                break
    if (blobs.text("Software") or "").strip() == "NovelAI" and (hit := _novelai(blobs.text("Comment"))) is not None:
        yield hit


def _infotext(text: str) -> tuple[str, str] | None:
    for match in _STEPS_LINE.finditer(text):
        line = match.group()
        if _SAMPLER.search(line) and _SEED.search(line):
            return ("Forge" if _FORGE.search(line) else "A1111"), line
    return None


def _json_object(text: str | None) -> dict[str, Any] | None:
    """A JSON object, or None for anything else (other JSON, bad JSON, nesting deeper than the parser recurses)."""
    if not text or not text.lstrip().startswith("{"):
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _types(nodes: Iterable[Any], field: str) -> list[str] | None:
    """The node types when every node is an object with a string `field`, else None."""
    types = []
    for node in nodes:
        if not isinstance(node, dict) or not isinstance(node.get(field), str):
            return None
        types.append(node[field])
    return types or None


def _nodes_detail(types: list[str]) -> str:
    return "nodes: " + ", ".join(sorted(set(types)))


def _comfy_prompt(text: str) -> tuple[str, str] | None:
    graph = _json_object(text)
    types = _types(graph.values(), "class_type") if graph else None
    return ("ComfyUI", _nodes_detail(types)) if types else None


def _comfy_workflow(text: str) -> tuple[str, str] | None:
    workflow = _json_object(text)
    nodes = workflow.get("nodes") if workflow else None
    types = _types(nodes, "type") if isinstance(nodes, list) else None
    return ("ComfyUI", _nodes_detail(types)) if types else None


def _invoke_metadata(text: str) -> tuple[str, str] | None:
    metadata = _json_object(text)
    if metadata is None or len(_INVOKE_KEYS & metadata.keys()) < 2:
        return None
    return "InvokeAI", _settings(metadata, ("generation_mode", "steps", "scheduler", "seed"))


def _invoke_graph(text: str) -> tuple[str, str] | None:
    graph = _json_object(text)
    nodes = graph.get("nodes") if graph else None
    types = _types(nodes.values(), "type") if isinstance(nodes, dict) else None
    return ("InvokeAI", _nodes_detail(types)) if types else None


def _novelai(comment: str | None) -> tuple[str, str] | None:
    settings = _json_object(comment)
    if settings is None or len(_NOVELAI_KEYS & settings.keys()) < 2:
        return None
    return "NovelAI", _settings(settings, ("steps", "sampler", "scale", "seed"))


def _swarmui(text: str) -> tuple[str, str] | None:
    outer = _json_object(text)
    params = outer.get("sui_image_params") if outer else None
    if not isinstance(params, dict):
        return None
    return "SwarmUI", _settings(params, ("model", "steps", "sampler", "seed"))


def _settings(values: dict[str, Any], keys: tuple[str, ...]) -> str:
    """`key: value` for the keys whose values are plain scalars (a model may be an object: its name then)."""
    parts = []
    for key in keys:
        value = values.get(key)
        if isinstance(value, dict):
            value = value.get("name") or value.get("model_name")
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            parts.append(f"{key}: {str(value)[:60]}")
    return ", ".join(parts) or "metadata"


def _generator_software(software: str) -> str | None:
    """The generator a Software value names: the name alone, or followed by a space (its version)."""
    return next((name for name in GENERATOR_SOFTWARE if software == name or software.startswith(name + " ")), None)
