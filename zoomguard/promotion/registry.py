"""The model registry: a directory of promoted versions and a pointer to the one being served.

Layout:
    REGISTRY/current.json                 {"version": ..., "updated_at": ...}  (replaced atomically)
    REGISTRY/<version>/adapter/           the LoRA adapter (peft files), copied from the candidate
    REGISTRY/<version>/model.json         base model, adapter path, previous version, promoted_at
    REGISTRY/<version>/metrics.json       held-out metrics of this version and of the one it replaced
    REGISTRY/<version>/calibration.json   the P(ai) calibration shipped with it
A version directory is written under a temporary name and renamed into place, so a reader never sees
half a version; current.json is written to a temporary file and renamed over the old one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from zoomguard.errors import BadInputError
from zoomguard.schemas.review import Calibration

CURRENT = "current.json"
MAX_POINTER_BYTES = 64 * 1024


@dataclass(frozen=True)
class RegistryEntry:
    version: str
    directory: Path
    base_model: str
    calibration: Calibration

    @property
    def adapter_dir(self) -> Path:
        return self.directory / "adapter"


def adapter_digest(adapter_dir: Path, max_bytes: int) -> str:
    """sha256 over the adapter's files (relative names and bytes, in name order); refuses oversize dirs."""
    files = sorted(p for p in adapter_dir.rglob("*") if p.is_file() and not p.is_symlink())
    total = sum(p.stat().st_size for p in files)
    if total > max_bytes:
        raise BadInputError(f"adapter {adapter_dir} holds {total} bytes, above evaluation.max_adapter_bytes")
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(adapter_dir).as_posix().encode() + b"\0")
        with path.open("rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def version_name(adapter_dir: Path, now: datetime, max_bytes: int) -> str:
    """A sortable, content-addressed name: UTC timestamp and the first 10 hex digits of the adapter digest."""
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{adapter_digest(adapter_dir, max_bytes)[:10]}"


class Registry:
    def __init__(self, root: Path):
        self.root = root

    def current(self) -> RegistryEntry | None:
        """The served version, or None when nothing was promoted yet (the base model serves)."""
        pointer = self.root / CURRENT
        if not pointer.is_file():
            return None
        if pointer.stat().st_size > MAX_POINTER_BYTES:
            raise BadInputError(f"{pointer} is larger than {MAX_POINTER_BYTES} bytes: not a registry pointer")
        version = _read_json(pointer).get("version")
        if not isinstance(version, str) or not version or "/" in version or version.startswith("."):
            raise BadInputError(f"{pointer} names no valid version")
        return self.entry(version)

    def entry(self, version: str) -> RegistryEntry:
        directory = self.root / version
        model = _read_json(directory / "model.json")
        calibration_file = directory / "calibration.json"
        calibration = (
            Calibration.model_validate(_read_json(calibration_file)) if calibration_file.is_file() else Calibration()
        )
        if not (directory / "adapter").is_dir():
            raise BadInputError(f"registry version {version} has no adapter directory")
        return RegistryEntry(version, directory, str(model.get("base_model", "")), calibration)

    def add(
        self,
        version: str,
        adapter_dir: Path,
        *,
        model: dict[str, Any],
        metrics: dict[str, Any],
        calibration: Calibration,
    ) -> RegistryEntry:
        """Copy the adapter and write its records as REGISTRY/<version>, all at once (rename into place)."""
        target = self.root / version
        if target.exists():
            raise BadInputError(f"registry version {version} already exists")
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=self.root))
        try:
            shutil.copytree(adapter_dir, staging / "adapter", symlinks=False)
            _write_json(staging / "model.json", model)
            _write_json(staging / "metrics.json", metrics)
            _write_json(staging / "calibration.json", calibration.model_dump())
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return self.entry(version)

    def set_current(self, version: str) -> None:
        """Point current.json at `version` (atomic replace: readers see the old pointer or the new one)."""
        if not (self.root / version / "model.json").is_file():
            raise BadInputError(f"registry version {version} does not exist")
        pointer = {"version": version, "updated_at": datetime.now(UTC).isoformat()}
        handle, temporary = tempfile.mkstemp(prefix=".current.", dir=self.root)
        with os.fdopen(handle, "w") as sink:
            json.dump(pointer, sink)
            sink.flush()
            os.fsync(sink.fileno())
        os.replace(temporary, self.root / CURRENT)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text())
    except FileNotFoundError:
        raise BadInputError(f"{path} is missing") from None
    except (OSError, ValueError) as exc:
        raise BadInputError(f"{path} is not readable JSON: {exc}") from None
    if not isinstance(loaded, dict):
        raise BadInputError(f"{path} is not a JSON object")
    return loaded


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, default=str))
