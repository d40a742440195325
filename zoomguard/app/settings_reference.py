"""The configuration reference, generated from the settings models so the README cannot drift from the code.

`zoomguard settings` prints it; a test checks the README carries exactly this text.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from zoomguard.app.config import ENV_PREFIX, Settings

BEGIN = "<!-- settings-reference:begin -->"
END = "<!-- settings-reference:end -->"


def settings_reference() -> str:
    rows = ["| setting | environment variable | default | what it does |", "|---|---|---|---|"]
    defaults = Settings()
    for path, default, doc in walk_settings(Settings, defaults, ()):
        env = ENV_PREFIX + "__".join(part.upper() for part in path)
        rows.append(f"| `{'.'.join(path)}` | `{env}` | {_show(default)} | {doc} |")
    return "\n".join([BEGIN, *rows, END])


def walk_settings(
    model: type[BaseModel], value: Any, prefix: tuple[str, ...]
) -> list[tuple[tuple[str, ...], Any, str]]:
    """(field path, default, description) of every leaf setting, depth first (the reference, the deploy checks)."""
    out = []
    for name, info in model.model_fields.items():
        current = getattr(value, name)
        path = (*prefix, name)
        if isinstance(current, BaseModel):
            out += walk_settings(type(current), current, path)
        elif dataclasses.is_dataclass(current) and not isinstance(current, type):
            for field in dataclasses.fields(current):
                out.append(((*path, field.name), getattr(current, field.name), field.metadata.get("doc", "")))
        else:
            out.append((path, current, _doc(info)))
    return out


def _doc(info: FieldInfo) -> str:
    return (info.description or "").replace("|", "\\|")


def _show(value: Any) -> str:
    if isinstance(value, SecretStr):
        return "(secret)"
    if value is None:
        return "unset"
    return "`" + json.dumps(value) + "`"


def update_readme(path: str = "README.md") -> bool:
    """Rewrite the generated block in the README; True when it changed."""
    from pathlib import Path

    readme = Path(path)
    text = readme.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    updated = text[:start] + settings_reference() + text[end:]
    if updated != text:
        readme.write_text(updated)
    return updated != text


if __name__ == "__main__":
    print("README.md updated" if update_readme() else "README.md already up to date")
