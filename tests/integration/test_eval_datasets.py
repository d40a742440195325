"""`zoomguard eval` on the public benchmarks' own formats, through the real vLLM CPU engine on the tiny model.

Each format is built here (label folders of generated images, a JSONL manifest, a dataset saved with
`datasets.save_to_disk`), scored on the session's engine, and its counts, label mapping, per-source rows and
table checked against what the files hold. The tiny model's verdicts are random, so no accuracy is expected; the
numbers are checked against the predictions, and the stages against who must decide: marked uploads by their
evidence, a copy of a bank entry by the bank, everything else by the model. The command itself runs once.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from tests.support import LoopThread, tiny_settings
from zoomguard.cli import main
from zoomguard.detector.zoomin import ZoomInDetector
from zoomguard.errors import BadInputError
from zoomguard.evaluation.eval_run import EvalRun, evaluate_source
from zoomguard.evaluation.sources.formats import open_dataset
from zoomguard.evaluation.stages import cascade_parts
from zoomguard.evidence.settings import EvidenceSettings
from zoomguard.known.hashing import pdq_of_bytes
from zoomguard.known.settings import KnownContentSettings
from zoomguard.media.settings import ImageLimits
from zoomguard.samples import make_image, make_samples, with_a1111_parameters, with_xmp_source_type

SIZE = (128, 96)
ALL = "(all)"


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One dataset per format, and a hash list naming one of the folder's real images."""
    root = tmp_path_factory.mktemp("eval-datasets")
    folder = root / "bench"
    samples = iter(make_samples(8, seed=700, size=SIZE))
    for generator in ("gen-a", "gen-b"):
        for label in ("0_real", "1_fake"):
            for _ in range(2):
                sample = next(samples)
                _write(folder / generator / label / sample.name, sample.data)
    _write(folder / "gen-a" / "1_fake" / "a1111.png", with_a1111_parameters(make_image(731, SIZE)))
    _write(folder / "gen-b" / "1_fake" / "xmp.jpg", with_xmp_source_type(make_image(732, SIZE)))
    known = sorted((folder / "gen-b" / "0_real").iterdir())[0]
    pdq = pdq_of_bytes(known.read_bytes())
    assert pdq.quality >= KnownContentSettings().min_quality
    bank = root / "bank.csv"
    with bank.open("w", newline="") as sink:
        csv.writer(sink).writerows([("pdq", "label", "source"), (pdq.hex, "real", "reviewed-list")])

    images = root / "trace" / "images"
    rows: list[dict[str, Any]] = []
    for index, sample in enumerate(make_samples(6, seed=760, size=SIZE)):
        _write(images / sample.name, sample.data)
        row: dict[str, Any] = {"image": f"images/{sample.name}", "label": ("fake", "real", 1, 0)[index % 4]}
        row["source"] = "gpt-image-1" if index < 3 else "coco"
        if index % 2 == 0:
            row["boxes"] = [[8, 8, 64, 48]]
            row["explanation"] = "the shadow falls the wrong way"
        rows.append(row)
    manifest = root / "trace" / "test.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))

    import datasets

    features = datasets.Features(
        {
            "image": datasets.Image(),
            "label": datasets.ClassLabel(names=["fake", "real"]),
            "generator": datasets.Value("string"),
        }
    )
    hf_samples = make_samples(6, seed=780, size=SIZE)
    datasets.Dataset.from_dict(
        {
            "image": [{"bytes": s.data, "path": None} for s in hf_samples],
            "label": [0, 1, 0, 1, 1, 0],  # 0 is "fake" in this dataset's own names
            "generator": ["sdxl", "laion", "sdxl", "laion", "laion", "flux"],
        },
        features=features,
    ).save_to_disk(str(root / "hf-saved"))
    return {"folder": folder, "bank": bank, "manifest": manifest, "hf": root / "hf-saved", "root": root}


def _evaluate(
    loop: LoopThread, detector: ZoomInDetector, tiny_model: Path, spec: Path, out: Path | None, **evaluation: Any
) -> EvalRun:
    settings = tiny_settings(str(tiny_model), evaluation={"concurrency": 8, **evaluation})
    ev = settings.evaluation
    source = open_dataset(str(spec), ev.dataset, ev.split)
    parts = None
    if ev.stages != "model":
        parts = cascade_parts(EvidenceSettings(), KnownContentSettings(), ImageLimits(), ev.bank_csv)
    return loop.run(
        evaluate_source(detector, source, ev, settings.detector, cascade=parts, out_dir=out, progress=False)
    )


def _overall(run: EvalRun, stage: str) -> dict[str, Any]:
    return next(row for row in run.table["rows"] if row["stage"] == stage and row["source"] == ALL)


def _check_numbers(run: EvalRun) -> None:
    """Every table row is its predictions' numbers."""
    for result in run.results:
        for row in (r for r in run.table["rows"] if r["stage"] == result.spec.role):
            chosen = [p for p in result.predictions if row["source"] in (ALL, p.source)]
            assert row["count"] == len(chosen)
            assert row["accuracy"] == pytest.approx(sum(p.decision == p.label for p in chosen) / len(chosen))
            for label, key in (("real", "accuracy_real"), ("ai_generated", "accuracy_ai")):
                of_label = [p for p in chosen if p.label == label]
                expected = sum(p.decision == label for p in of_label) / len(of_label) if of_label else None
                assert row[key] == (pytest.approx(expected) if expected is not None else None)


def test_a_folder_through_the_model_and_the_cascade_with_a_bank(
    tmp_path: Path, data: dict[str, Path], loop: LoopThread, inprocess_detector: ZoomInDetector, tiny_model: Path
) -> None:
    out = tmp_path / "out"
    run = _evaluate(
        loop, inprocess_detector, tiny_model, data["folder"], out, stages="both", bank_csv=str(data["bank"])
    )
    assert [r.spec.role for r in run.results] == ["model", "cascade"]
    assert run.dataset["format"] == "folder" and run.dataset["items"] == 10 and run.problems == []
    assert run.dataset["labels_seen"] == {
        "0_real": {"label": "real", "count": 4},
        "1_fake": {"label": "ai_generated", "count": 6},
    }
    assert run.dataset["bank"]["entries"] == 1
    for stage in ("model", "cascade"):
        rows = {row["source"]: row for row in run.table["rows"] if row["stage"] == stage}
        assert {s: (r["count"], r["real"], r["ai_generated"]) for s, r in rows.items()} == {
            ALL: (10, 4, 6), "gen-a": (5, 2, 3), "gen-b": (5, 2, 3)
        }  # fmt: skip
    assert _overall(run, "model")["decided_by"] == {"evidence": 0, "known_content": 0, "model": 10, "error": 0}
    assert _overall(run, "cascade")["decided_by"] == {"evidence": 2, "known_content": 1, "model": 7, "error": 0}
    cascade = {p.event_id: p for p in run.results[1].predictions}
    for marked in ("gen-a/1_fake/a1111.png", "gen-b/1_fake/xmp.jpg"):
        assert (cascade[marked].decision, cascade[marked].decision_source) == ("ai_generated", "evidence")
    [known] = [p for p in cascade.values() if p.decision_source == "known_content"]
    assert known.event_id.startswith("gen-b/0_real/") and known.decision == "real"
    # where the model decided in the cascade, it is the same answer as the model's own
    model = {p.event_id: p for p in run.results[0].predictions}
    for event_id, p in cascade.items():
        if p.decision_source == "model":
            assert (p.decision, p.p_ai) == (model[event_id].decision, model[event_id].p_ai)
    _check_numbers(run)
    for stage in ("model", "cascade"):
        report = json.loads((out / stage / "report.json").read_text())
        assert report["stage"] == stage and report["metrics"]["count"] == 10
        assert sorted(report["per_source"]) == ["gen-a", "gen-b"]
    assert json.loads((out / "table.json").read_text())["dataset"]["fingerprint"] == run.dataset["fingerprint"]
    assert "| cascade | **bench** | 10 |" in (out / "table.md").read_text()


def test_a_jsonl_manifest_with_boxes_and_a_saved_dataset_with_its_class_names(
    data: dict[str, Path], loop: LoopThread, inprocess_detector: ZoomInDetector, tiny_model: Path
) -> None:
    run = _evaluate(loop, inprocess_detector, tiny_model, data["manifest"], None)
    assert run.dataset["format"] == "manifest" and run.dataset["items"] == 6
    assert run.dataset["labels_seen"] == {
        "0": {"label": "real", "count": 1}, "1": {"label": "ai_generated", "count": 1},
        "fake": {"label": "ai_generated", "count": 2}, "real": {"label": "real", "count": 2},
    }  # fmt: skip
    rows = {row["source"]: row for row in run.table["rows"]}
    assert {s: r["count"] for s, r in rows.items()} == {ALL: 6, "coco": 3, "gpt-image-1": 3}
    assert rows[ALL]["box_records"] == 3 and 0.0 <= rows[ALL]["mean_box_iou"] <= 1.0
    assert [p.reference_boxes for p in run.results[0].predictions][:2] == [((8, 8, 64, 48),), ()]
    _check_numbers(run)

    saved = _evaluate(loop, inprocess_detector, tiny_model, data["hf"], None)
    assert saved.dataset["format"] == "hf_disk" and saved.dataset["items"] == 6
    assert saved.dataset["labels_seen"] == {
        "fake": {"label": "ai_generated", "count": 3},
        "real": {"label": "real", "count": 3},
    }
    # the source column is named by the setting
    named = _evaluate(
        loop, inprocess_detector, tiny_model, data["hf"], None, dataset={"columns": {"source": "generator"}}
    )
    assert {r["source"]: r["count"] for r in named.table["rows"]} == {ALL: 6, "flux": 1, "laion": 3, "sdxl": 2}
    assert named.dataset["fingerprint"] == saved.dataset["fingerprint"]  # the same images and labels
    _check_numbers(named)


def test_a_malformed_dataset_reports_each_problem_and_goes_on_or_refuses(
    tmp_path: Path, data: dict[str, Path], loop: LoopThread, inprocess_detector: ZoomInDetector, tiny_model: Path
) -> None:
    root = tmp_path / "bad"
    good = make_samples(4, seed=790, size=SIZE)
    for sample in good:
        _write(root / "images" / sample.name, sample.data)
    _write(root / "images" / "truncated.png", good[1].data[:40])
    lines = [
        {"image": f"images/{good[0].name}", "label": "fake"},
        {"image": f"images/{good[1].name}"},  # missing label
        {"image": f"images/{good[2].name}", "label": "deepfake"},  # unknown label value
        {"image": "images/truncated.png", "label": "real"},  # unreadable image
        {"image": "images/absent.png", "label": "real"},  # no such file
        {"image": f"images/{good[3].name}", "label": "real"},
    ]
    manifest = root / "bad.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))

    with pytest.raises(BadInputError) as refused:
        _evaluate(loop, inprocess_detector, tiny_model, manifest, tmp_path / "refused")
    message = str(refused.value)
    assert "2 of the 6 rows of bad have problems" in message and "missing label (key 'label')" in message
    assert not (tmp_path / "refused").exists()  # refused while listing: no engine time, no numbers

    out = tmp_path / "went-on"
    run = _evaluate(loop, inprocess_detector, tiny_model, manifest, out, dataset={"max_problem_rate": 0.7})
    assert run.results[0].metrics["count"] == 2 and run.dataset["items"] == 2
    assert [p.event_id for p in run.results[0].predictions] == [f"images/{good[0].name}", f"images/{good[3].name}"]
    problems = [json.loads(line) for line in (out / "problems.jsonl").read_text().splitlines()]
    by_line = {p["location"].rsplit(":", 1)[1]: (p["phase"], p["reason"]) for p in problems}
    assert by_line["2"] == ("listing", "missing label (key 'label')")
    assert by_line["3"][0] == "listing" and by_line["3"][1].startswith("unknown label 'deepfake'")
    assert by_line["4"][0] == "decoding" and by_line["4"][1].startswith("unreadable image")
    assert by_line["5"][0] == "reading" and "absent.png" in by_line["5"][1]
    assert len(problems) == 4 and json.loads((out / "report.json").read_text())["dataset"]["problems"]["count"] == 4
    # a label map makes the unknown value known: one problem fewer, one image more
    mapped = _evaluate(loop, inprocess_detector, tiny_model, manifest, None,
                       dataset={"max_problem_rate": 0.7, "label_map": ["deepfake=ai_generated"]})  # fmt: skip
    assert mapped.results[0].metrics["count"] == 3 and len(mapped.problems) == 3


def test_the_eval_command_on_a_manifest_through_the_cascade(
    tmp_path: Path, data: dict[str, Path], tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"engine": {"dtype": "float32", "enforce_eager": True, "max_model_len": 4096},
                                  "detector": {"max_pixels": 224 * 224, "max_regions": 4}}))  # fmt: skip
    out = tmp_path / "cli-out"
    argv = [
        "eval", "--model", str(tiny_model), "--dataset", str(data["manifest"]), "--out", str(out),
        "--config", str(config), "--stages", "cascade", "--label-map", "0=ai_generated,1=real",
        "--dataset-name", "trace-mini", "--ai-threshold", "0.5", "--real-threshold", "0.4999", "--no-progress",
    ]  # fmt: skip
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert list(printed["stages"]) == ["cascade"] and printed["metrics"]["count"] == 6
    assert printed["dataset"]["name"] == "trace-mini" and printed["dataset"]["problems"] == 0
    table = json.loads((out / "table.json").read_text())
    assert table["command"].startswith("zoomguard eval --model ") and "--stages cascade" in table["command"]
    assert table["thresholds"] == {"ai_threshold": 0.5, "real_threshold": 0.4999}
    assert table["model"]["name"] == str(tiny_model) and table["model"]["version"].startswith("sha256:")
    assert table["dataset"]["fingerprint"] == printed["dataset"]["fingerprint"]
    assert _rows_of(table) == {ALL: 6, "coco": 3, "gpt-image-1": 3}
    report = json.loads((out / "report.json").read_text())
    assert report["stage"] == "cascade" and report["settings"]["ai_threshold"] == 0.5
    seen = report["dataset"]["labels_seen"]
    assert (seen["0"]["label"], seen["1"]["label"], seen["fake"]["label"]) == ("ai_generated", "real", "ai_generated")
    # with the band closed every image the model answered is decided (no uncertain)
    assert report["metrics"]["uncertain_rate"] == 0.0
    # how long the run took to read and score, per 1,000 images: what a user plans a larger run with
    timing = report["timing"]
    assert table["timing"] == timing and 0 < timing["scoring_s"] < 600
    assert timing["seconds_per_1000_images"] == pytest.approx(1000 * timing["scoring_s"] / 6, rel=0.01)
    markdown = (out / "table.md").read_text()
    assert "s per 1,000 images)" in markdown
    assert markdown.startswith("# zoomguard eval: trace-mini") and "| cascade | **trace-mini** | 6 |" in markdown
    assert (out / "problems.jsonl").read_text() == ""


def _rows_of(table: dict[str, Any]) -> dict[str, int]:
    return {row["source"]: row["count"] for row in table["rows"]}
