"""The data flows one way: a module imports only its own room (top-level package) or the rooms below it.

The layers, bottom to top, are written down in the README's design section; this test reads every module's
imports (lazy ones inside functions and TYPE_CHECKING ones included) and names each upward import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "zoomguard"

# Bottom to top; rooms in one layer do not import each other either.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors",),
    ("schemas",),
    ("telemetry", "process_guard", "samples"),
    ("media",),
    ("kafka",),
    ("detector", "evidence", "known"),
    ("worker",),
    ("review",),
    ("dataset",),
    ("training",),
    ("evaluation",),
    ("promotion",),
    ("app",),
    ("bench",),
    ("commands",),
    ("cli",),
)
RANK = {room: rank for rank, rooms in enumerate(LAYERS) for room in rooms}


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every zoomguard import in the file."""
    module = _module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            # `from zoomguard import x` imports the room x
            names = [f"{target}.{alias.name}" for alias in node.names] if target == "zoomguard" else [target]
            found.extend((node.lineno, name) for name in names)
    return [(line, name) for line, name in found if name == "zoomguard" or name.startswith("zoomguard.")]


def upward_imports(root: Path = PACKAGE) -> list[str]:
    problems = []
    for path in sorted(root.rglob("*.py")):
        here = _room(_module_name(path, root))
        if here == "":  # the package's own __init__ imports nothing of it
            problems.extend(f"zoomguard/__init__.py:{line} imports {target}" for line, target in _imports(path, root))
            continue
        if here not in RANK:
            problems.append(f"{path.relative_to(root.parent)}: room {here!r} is not in LAYERS (add it)")
            continue
        for line, target in _imports(path, root):
            there = _room(target)
            if there == here:
                continue
            if there not in RANK:
                problems.append(f"{path.relative_to(root.parent)}:{line} imports {target}: not in LAYERS")
            elif RANK[there] >= RANK[here]:
                problems.append(f"{path.relative_to(root.parent)}:{line} imports {target} ({here} -> {there}: upward)")
    return problems


def test_no_module_imports_upward() -> None:
    assert upward_imports() == []


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The check itself can fail: a detector module importing the worker, lazily, is named."""
    root = tmp_path / "zoomguard"
    (root / "detector").mkdir(parents=True)
    (root / "worker").mkdir()
    (root / "detector" / "__init__.py").write_text("")
    (root / "worker" / "__init__.py").write_text("from zoomguard.detector import zoomin\n")
    (root / "detector" / "zoomin.py").write_text("def f():\n    from ..worker import loop\n")
    assert upward_imports(root) == [
        "zoomguard/detector/zoomin.py:2 imports zoomguard.worker (detector -> worker: upward)"
    ]


@pytest.mark.parametrize("room", sorted(RANK))
def test_every_layer_exists(room: str) -> None:
    assert (PACKAGE / room).is_dir() or (PACKAGE / f"{room}.py").is_file()


def test_the_readme_lists_the_layers() -> None:
    """The README's layer table is this test's LAYERS, in order."""
    text = (PACKAGE.parent / "README.md").read_text()
    table = text.split("<!-- layers -->", 1)[1].split("<!-- /layers -->", 1)[0]
    rows = [line.split("|")[2] for line in table.strip().splitlines()[2:]]
    listed = [tuple(name.strip(" `") for name in row.split(",")) for row in rows]
    assert listed == list(LAYERS)
