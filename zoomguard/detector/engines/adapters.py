"""LoRA adapter directories: checked before an engine is asked to load them, and named by their content.

Why: an adapter path arrives in a ModelUpdate event (untrusted), and vLLM's own error for a missing or
oversized adapter is a generic worker failure. Checking the peft files here gives a clear message and
never disturbs the running engine.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

from zoomguard.detector.engines.base import Adapter, AdapterLoadError

CONFIG_FILE = "adapter_config.json"
WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")
MAX_CONFIG_BYTES = 1024 * 1024
MAX_HEADER_BYTES = 16 * 1024 * 1024


def read_adapter_config(path: str | Path) -> dict[str, Any]:
    """The adapter's peft config; raises AdapterLoadError when the directory is not a LoRA adapter."""
    directory = Path(path)
    config_file = directory / CONFIG_FILE
    if not directory.is_dir():
        raise AdapterLoadError(f"adapter directory {directory} does not exist (or is not visible to this worker)")
    if not config_file.is_file():
        raise AdapterLoadError(f"{directory} has no {CONFIG_FILE}: not a peft adapter directory")
    if config_file.stat().st_size > MAX_CONFIG_BYTES:
        raise AdapterLoadError(f"{config_file} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        config = json.loads(config_file.read_text())
    except (OSError, ValueError) as exc:
        raise AdapterLoadError(f"{config_file} is not readable JSON: {exc}") from None
    if not isinstance(config, dict):
        raise AdapterLoadError(f"{config_file} is not a JSON object")
    if str(config.get("peft_type", "LORA")).upper() != "LORA":
        raise AdapterLoadError(f"{directory} is a {config.get('peft_type')} adapter; only LoRA can be served")
    if not any((directory / name).is_file() for name in WEIGHT_FILES):
        raise AdapterLoadError(f"{directory} has no adapter weights ({' or '.join(WEIGHT_FILES)})")
    return config


def check_adapter(path: str | Path, max_rank: int | None = None) -> dict[str, Any]:
    """read_adapter_config plus the rank limit the engine was started with (vLLM's max_lora_rank)."""
    config = read_adapter_config(path)
    ranks = [config.get("r", 0), *(config.get("rank_pattern") or {}).values()]
    rank = max(int(r) for r in ranks if isinstance(r, int | float))
    if max_rank is not None and rank > max_rank:
        raise AdapterLoadError(
            f"adapter {path} has LoRA rank {rank}, above engine.max_lora_rank={max_rank}: raise max_lora_rank"
        )
    weights = Path(path) / WEIGHT_FILES[0]
    if weights.is_file():
        _check_shapes(weights, rank)
    return config


def _check_shapes(weights: Path, max_rank: int) -> None:
    """vLLM copies LoRA tensors into its slots without checking their shapes (a mangled file is served as
    garbage): every lora_A must be (r, in) and every lora_B (out, r) with r within the adapter's rank.
    Only the safetensors header is read (JSON after an 8-byte length), not the tensors."""
    with weights.open("rb") as stream:
        head = stream.read(8)
        if len(head) != 8:
            raise AdapterLoadError(f"{weights} is not a safetensors file")
        (length,) = struct.unpack("<Q", head)
        if length > MAX_HEADER_BYTES:
            raise AdapterLoadError(f"{weights}: header of {length} bytes is larger than {MAX_HEADER_BYTES}")
        try:
            header = json.loads(stream.read(length))
        except ValueError as exc:
            raise AdapterLoadError(f"{weights} has an unreadable header: {exc}") from None
    if not isinstance(header, dict):
        raise AdapterLoadError(f"{weights} has an unreadable header")
    ranks: dict[str, dict[str, int]] = {}
    for name, info in header.items():
        if name == "__metadata__" or not isinstance(info, dict):
            continue
        shape = info.get("shape")
        for part, rank_axis in (("lora_A", 0), ("lora_B", 1)):
            if f".{part}." not in name:
                continue
            if not isinstance(shape, list) or len(shape) != 2:
                raise AdapterLoadError(f"{weights}: {name} has shape {shape}; LoRA matrices are 2-D")
            ranks.setdefault(name.split(f".{part}.")[0], {})[part] = int(shape[rank_axis])
    if not ranks:
        raise AdapterLoadError(f"{weights} holds no lora_A / lora_B tensors")
    for module, pair in ranks.items():
        a, b = pair.get("lora_A"), pair.get("lora_B")
        if a is None or b is None or a != b or not 0 < a <= max_rank:
            raise AdapterLoadError(
                f"{weights}: {module} has lora_A rank {a} and lora_B rank {b}; "
                f"they must match and be at most {max_rank}"
            )


def adapter_version(path: str | Path) -> str:
    """A stable short id of an adapter's config and weights (adapters are small: the bytes are hashed)."""
    directory = Path(path)
    digest = hashlib.sha256()
    for name in (CONFIG_FILE, *WEIGHT_FILES):
        file = directory / name
        if file.is_file():
            digest.update(name.encode())
            with file.open("rb") as stream:
                for chunk in iter(lambda: stream.read(1 << 20), b""):
                    digest.update(chunk)
    return "lora-sha256:" + digest.hexdigest()[:12]


def startup_adapter(lora_adapter: str, lora_version: str) -> Adapter | None:
    """The adapter the settings ask to serve from the start, named by its version (None: base weights)."""
    if not lora_adapter:
        return None
    return Adapter(name=lora_version or adapter_version(lora_adapter), path=lora_adapter)
