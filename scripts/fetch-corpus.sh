#!/usr/bin/env bash
# Fetch the hostile-image corpus the tests run (tests/unit/test_hostile_corpus.py): Pillow's own Tests/images
# (~1,070 truncated, malformed and fuzzer-found files), taken from Pillow's sdist on the package registry at the
# version installed in the venv, because CI reaches the registry but not GitHub. Only Tests/images/ is kept, in
# .cache/pillow-corpus/<version>/ (gitignored). Idempotent: a complete folder is left as it is.
#
#   ./scripts/fetch-corpus.sh                        # uses .venv/bin/python (VENV=... to change)
#   PIP_FIND_LINKS=/dir/with/the/sdist ...            # pip takes pillow-<version>.tar.gz from there
#   PILLOW_SDIST=/path/pillow-<version>.tar.gz ...   # no pip at all (fully offline: pip download also needs
#                                                      Pillow's build requirements to read the sdist's metadata)
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PY="$VENV/bin/python"
CACHE=${CORPUS_CACHE:-.cache/pillow-corpus}
MIN_FILES=1000  # Pillow 13's Tests/images holds ~1,080 files: fewer means a broken download or layout change

say() { echo "corpus: $*" >&2; }
die() { say "error: $*"; exit 1; }

[ -x "$PY" ] || die "$PY not found: run 'make setup' first"
version=$("$PY" -c 'import PIL; print(PIL.__version__)') || die "Pillow is not importable from $PY"
target="$CACHE/$version"
stamp="$target/.complete"

if [ -f "$stamp" ]; then
  say "Pillow $version test images present in $target ($(cat "$stamp") files)"
  exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/zoomguard-corpus.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [ -n "${PILLOW_SDIST:-}" ]; then
  sdist=$PILLOW_SDIST
  [ -f "$sdist" ] || die "PILLOW_SDIST=$sdist is not a file"
  [ "$(basename "$sdist")" = "pillow-$version.tar.gz" ] || die "PILLOW_SDIST must be pillow-$version.tar.gz (the installed Pillow)"
else
  say "downloading the Pillow $version sdist (~47 MB) with pip"
  # pip download prepares an sdist's metadata, so it also fetches Pillow's build requirements (setuptools,
  # pybind11) into an isolated build environment; nothing is installed into the venv.
  if ! "$PY" -m pip download --quiet --no-deps --no-binary :all: "pillow==$version" -d "$work/sdist"; then
    die "pip could not download pillow==$version as an sdist (registry reachable? or set PILLOW_SDIST)"
  fi
  sdist=$(find "$work/sdist" -maxdepth 1 -name 'pillow-*.tar.gz' | head -n 1)
  [ -n "$sdist" ] || die "pip saved no pillow-*.tar.gz in $work/sdist"
fi

say "extracting Tests/images/ from $(basename "$sdist")"
# Python's tarfile with the "data" filter: no absolute paths, no '..', no links out of the folder, no devices.
count=$("$PY" - "$sdist" "$work/images" <<'PY'
import sys
import tarfile
from pathlib import PurePosixPath

sdist, dest = sys.argv[1], sys.argv[2]
with tarfile.open(sdist) as archive:
    members = []
    for member in archive.getmembers():
        parts = PurePosixPath(member.name).parts
        if len(parts) > 3 and parts[1:3] == ("Tests", "images") and (member.isfile() or member.isdir()):
            member.name = str(PurePosixPath(*parts[3:]))
            members.append(member)
    archive.extractall(dest, members=members, filter="data")
print(sum(member.isfile() for member in members))
PY
)
[ "$count" -ge "$MIN_FILES" ] || die "only $count files under Tests/images/ in $(basename "$sdist") (expected >= $MIN_FILES)"

mkdir -p "$CACHE"
rm -rf "$target"
mv "$work/images" "$target"
echo "$count" > "$stamp"
say "Pillow $version test images ready in $target ($count files)"
