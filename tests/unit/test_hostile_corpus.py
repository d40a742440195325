"""Pillow's own test corpus (~1,060 truncated, malformed and fuzzer-found files) and seeded mutations of it, and
mutated marked files (XMP, generator metadata, Extended XMP, C2PA), through every reader of raw upload bytes: the
composed evidence reader, read_metadata, the C2PA sniff, probe_image, decode_image and decode_thumbnail.

Allowed: the readers return a list of EvidenceItem, the decoder returns or raises BadInputError. Anything else
(another exception, a crash, a hang) fails naming the file. The work runs in a child process
(tests/hostile_corpus.py) so that a native crash names its file instead of killing the session. The corpus is
fetched by `make corpus`; without it these tests fail (they never skip). ZOOMGUARD_CORPUS_SEED changes the
mutations, to fuzz further by hand.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.hostile_corpus import CHECKS, CORPUS_ENV, corpus_files, corpus_folder, variants
from tests.unit.test_evidence_c2pa import store_after_idat
from tests.unit.test_evidence_metadata import marked_fixtures
from zoomguard.evidence.demo_credentials import make_chain, sign
from zoomguard.evidence.reader import build_reader
from zoomguard.evidence.settings import EvidenceSettings
from zoomguard.media.images import decode_image

ROOT = Path(__file__).resolve().parents[2]
SEED = os.environ.get("ZOOMGUARD_CORPUS_SEED", "zoomguard-corpus-1")
SHARDS = 4
CORPUS_ROUNDS = 1  # 8 mutations a file (6 without metadata): ~6,600 cases over 4 shards, ~15 s on 2 cores
MARKED_ROUNDS = 40
CHILD_TIMEOUT_S = 100  # under the per-test timeout, so a hang is reported with its file
SLOW_CASE_S = 10.0  # one variant through all six checks; the slowest corpus case takes ~0.2 s


def run_child(folder: Path, tmp_path: Path, *extra: str, timeout: float = CHILD_TIMEOUT_S) -> dict[str, Any]:
    """Run tests/hostile_corpus.py over `folder`; a crash or a hang fails naming the case it was in."""
    progress, result = tmp_path / "progress.tsv", tmp_path / "result.json"
    command = [sys.executable, "-m", "tests.hostile_corpus", str(folder), "--seed", SEED]
    command += ["--progress", str(progress), "--result", str(result), *extra]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the readers hung (over {timeout:.0f} s) on {_last_case(progress)}", pytrace=False)
    if done.returncode != 0:
        how = f"signal {signal.Signals(-done.returncode).name}" if done.returncode < 0 else f"exit {done.returncode}"
        stderr = done.stderr.decode(errors="replace")[-1500:]
        pytest.fail(f"the readers crashed ({how}) on {_last_case(progress)}\n{stderr}", pytrace=False)
    return json.loads(result.read_text())


def _last_case(progress: Path) -> str:
    lines = progress.read_text().splitlines() if progress.exists() else []
    if not lines:
        return "no case (it died before the first)"
    name, variant, check = lines[-1].split("\t")
    return f"{name} (variant {variant}, check {check}; seed {SEED!r})"


def assert_clean(result: dict[str, Any]) -> None:
    """Nothing escaped, every check ran on every case, and no case was slow (a CPU bomb)."""
    escaped = [f"{e['file']} (variant {e['variant']}) {e['check']}: {e['error']}" for e in result["escaped"]]
    assert not escaped, f"{len(escaped)} escaped (seed {SEED!r}):\n" + "\n".join(escaped[:40])
    assert set(result["outcomes"]) == set(CHECKS)
    for check, counts in result["outcomes"].items():
        assert sum(counts.values()) == result["cases"], check
    seconds, case = result["slowest_s"][0]
    assert seconds < SLOW_CASE_S, f"{case} took {seconds} s through the readers"
    print(json.dumps({key: result[key] for key in ("files", "cases", "outcomes", "elapsed_s", "peak_rss_mb")}))


# ---------------------------------------------------------------- the corpus


def test_the_corpus_is_there_and_whole(pillow_corpus: Path) -> None:
    """A broken download or extraction fails here, loudly, rather than making the run below trivially clean."""
    files = corpus_files(pillow_corpus)
    assert len(files) > 1000, f"only {len(files)} files in {pillow_corpus}: run `make corpus` again"
    names = {path.name for path in files}
    assert {"hopper.jpg", "hopper.png", "hopper.webp", "hopper.gif", "hopper.bmp", "hopper.tif"} <= names
    assert {"decompression_bomb.gif", "truncated_image.png", "xmp_test.jpg"} <= names
    for name in ("hopper.jpg", "hopper.png", "hopper.webp", "hopper.gif", "hopper.bmp", "hopper.tif"):
        decoded = decode_image((pillow_corpus / name).read_bytes())
        assert (decoded.image.mode, decoded.image.size) == ("RGB", (128, 128)), name


def test_the_corpus_folder_is_overridable_and_its_absence_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    import PIL

    monkeypatch.delenv(CORPUS_ENV, raising=False)
    assert corpus_folder() == ROOT / ".cache" / "pillow-corpus" / PIL.__version__
    monkeypatch.setenv(CORPUS_ENV, "/elsewhere/Tests/images")
    assert corpus_folder() == Path("/elsewhere/Tests/images")


@pytest.mark.timeout(CHILD_TIMEOUT_S + 20)
@pytest.mark.parametrize("shard", range(SHARDS))
def test_every_corpus_file_and_its_mutations(pillow_corpus: Path, tmp_path: Path, shard: int) -> None:
    result = run_child(pillow_corpus, tmp_path, "--rounds", str(CORPUS_ROUNDS), "--shard", f"{shard}/{SHARDS}")
    assert result["files"] >= 1000 // SHARDS
    assert_clean(result)
    decoded = result["outcomes"]["decode"]
    assert decoded.get("ok", 0) > 0 and decoded.get("image_decode", 0) > 0  # both kinds are in the corpus


# ---------------------------------------------------------------- marked files, mutated


def noise(fmt: str) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.frombytes("RGB", (48, 32), bytes(range(256)) * 18).save(out, fmt)
    return out.getvalue()


@pytest.fixture(scope="module")
def marked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every kind of mark the readers know, each file carrying one (checked), written to a folder. The C2PA files
    are signed afresh each run (new keys, new manifest ids), so their mutations reproduce by name, not by byte."""
    chain = make_chain("Corpus")
    files = {f"marked-{index}": data for index, data in enumerate(marked_fixtures())}
    for fmt, mime in (("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")):
        files[f"c2pa.{fmt.lower()}"] = sign(chain, noise(fmt), mime)
    files["c2pa-edited.jpg"] = sign(make_chain("Editor"), files["c2pa.jpeg"], "image/jpeg", edit=True)
    files["c2pa-store-after-idat.png"] = store_after_idat(files["c2pa.png"])
    folder = tmp_path_factory.mktemp("marked")
    reader = build_reader(EvidenceSettings())
    assert reader is not None
    for name, data in files.items():
        assert reader(data), f"{name} carries no mark the readers see"
        (folder / name).write_bytes(data)
    return folder


@pytest.mark.timeout(CHILD_TIMEOUT_S + 20)
def test_mutated_marked_files(marked: Path, tmp_path: Path) -> None:
    result = run_child(marked, tmp_path, "--rounds", str(MARKED_ROUNDS))
    assert_clean(result)
    found = result["outcomes"]["evidence"]
    assert found.get("items", 0) > result["files"] and found.get("none", 0) > 0  # mutations keep and break marks
    assert result["outcomes"]["c2pa_sniff"].get("store", 0) > 0


def test_the_mutations_are_deterministic_and_reach_the_metadata(marked: Path) -> None:
    data = (marked / "marked-0").read_bytes()
    first = list(variants("marked-0", data, SEED, rounds=2))
    assert first == list(variants("marked-0", data, SEED, rounds=2))
    assert first != list(variants("marked-0", data, SEED + "x", rounds=2))
    names = [name for name, _ in first]
    assert names[0] == "original" and sum("meta" in name for name in names) == 6
    assert all(len(mutated) < len(data) and data.startswith(mutated) for name, mutated in first if "cut" in name)


# ---------------------------------------------------------------- the harness names what crashed or hung


@pytest.mark.parametrize("trap", ["crash", "hang"])
def test_a_crash_or_hang_fails_naming_the_file(marked: Path, tmp_path: Path, trap: str) -> None:
    first = corpus_files(marked)[0].name
    with pytest.raises(pytest.fail.Exception) as failed:
        run_child(marked, tmp_path, f"--{trap}-on", first, timeout=6)
    message = str(failed.value)
    assert f"{first} (variant original, check evidence" in message
    assert ("signal SIGABRT" in message) if trap == "crash" else ("hung" in message)
