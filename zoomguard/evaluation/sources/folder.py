"""An image folder as most AI-image benchmarks ship one: label folders (`0_real/`, `1_fake/`) under each generator.

CNNSpot and UnivFD's test sets (`progan/airplane/0_real/`), GenImage (`ADM/val/nature/`, `ADM/val/ai/`) and
FakeClue (`test/animal/real/`) all put an image's label in the name of a folder on its path, and the generator
(or category) in the folders above it. An image's label folder is the one folder on its path (below the root)
whose name the label map knows; its source is the path above it (`progan/airplane`, cut to `source_depth`
parts), or the root's name when the label folder sits at the root. An image under no label folder, or under
two, is a problem. Hidden files are skipped and files that are not images are counted, both in the report.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from zoomguard.evaluation.sources.items import DEFAULT_MAX_BYTES, EvalItem, Problem, Row, read_bounded
from zoomguard.evaluation.sources.labels import LabelMap

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})


class FolderSource:
    format = "folder"
    max_image_bytes = DEFAULT_MAX_BYTES  # what one image file may cost in memory (open_dataset sets it)

    def __init__(self, root: Path, labels: LabelMap, *, source_depth: int = 0, name: str = ""):
        self.root = root
        self.name = name or root.resolve().name
        self._labels = labels
        self._depth = source_depth
        self._ignored: Counter[str] = Counter()

    def describe(self) -> dict[str, Any]:
        return {
            "path": str(self.root),
            "format": self.format,
            "source_depth": self._depth,
            "ignored_files": dict(sorted(self._ignored.items())),
        }

    def _files(self) -> Iterator[Path]:
        """Image files under the root, in sorted path order (the same order for both passes)."""
        self._ignored.clear()
        for directory, subdirs, files in os.walk(self.root):
            subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
            for name in sorted(files):
                suffix = Path(name).suffix.lower()
                if name.startswith("."):
                    self._ignored["hidden"] += 1
                elif suffix not in IMAGE_SUFFIXES:
                    self._ignored[suffix or "(no suffix)"] += 1
                else:
                    yield Path(directory) / name

    def rows(self) -> Iterator[Row]:
        for path in self._files():
            yield self._row(path)

    def _row(self, path: Path) -> Row:
        relative = path.relative_to(self.root)
        item_id = relative.as_posix()
        folders = relative.parts[:-1]
        found = [(index, name) for index, name in enumerate(folders) if self._labels.knows(name)]
        if not found:
            return Problem(
                str(path),
                "not under a label folder (0_real, 1_fake, real, fake, nature, ai, ...); name another folder "
                "with --label-map FOLDER=real or FOLDER=ai_generated",
                item_id=item_id,
            )
        if len(found) > 1:
            named = ", ".join(name for _, name in found)
            return Problem(str(path), f"more than one label folder on its path ({named})", item_id=item_id)
        index, folder = found[0]
        label, raw = self._labels.label_of(folder)
        above = folders[:index]
        source = "/".join(above[: self._depth] if self._depth else above) or self.name
        return EvalItem(item_id=item_id, label=label, raw_label=raw, source=source, location=str(path))

    def images(self) -> Iterator[bytes | Problem]:
        for path in self._files():
            try:
                yield read_bounded(path, self.max_image_bytes)
            except OSError as exc:
                item_id = path.relative_to(self.root).as_posix()
                yield Problem(str(path), f"unreadable: {exc.strerror or exc}", "reading", item_id)
