"""The dataset readers of `eval`, on datasets built here: image folders, JSON/JSONL manifests, Parquet, datasets
saved by `datasets`, collect output. Labels are mapped by the table or refused, every bad row is a Problem with
its location, and both passes of a reader walk the same rows."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from zoomguard.dataset.records import TrainingRecord, write_dataset
from zoomguard.errors import BadInputError
from zoomguard.evaluation.settings import EvaluationSettings
from zoomguard.evaluation.sources.fields import parse_boxes
from zoomguard.evaluation.sources.fingerprint import fingerprint, fingerprint_line
from zoomguard.evaluation.sources.formats import detect_format, open_dataset
from zoomguard.evaluation.sources.items import DatasetSource, EvalItem, Problem
from zoomguard.evaluation.sources.labels import LabelMap, parse_pairs
from zoomguard.evaluation.sources.parquet import split_of
from zoomguard.evaluation.sources.settings import DatasetSettings
from zoomguard.samples import make_samples

SAMPLES = make_samples(6, seed=40, size=(64, 48))


def _settings(**values: Any) -> DatasetSettings:
    return DatasetSettings.model_validate(values)


def _open(spec: Path | str, split: str = "test", **values: Any) -> DatasetSource:
    return open_dataset(str(spec), _settings(**values), split)


def _both(source: DatasetSource) -> tuple[list[EvalItem | Problem], list[bytes | Problem]]:
    return list(source.rows()), list(source.images())


def _items(rows: list[EvalItem | Problem]) -> list[EvalItem]:
    return [row for row in rows if isinstance(row, EvalItem)]


def _problems(rows: list[EvalItem | Problem]) -> list[Problem]:
    return [row for row in rows if isinstance(row, Problem)]


# ---------------------------------------------------------------- labels, boxes, fingerprint


@pytest.mark.parametrize(
    ("value", "label"),
    [("0_real", "real"), ("1_fake", "ai_generated"), ("Fake ", "ai_generated"), ("nature", "real"), ("ai", "ai_generated"),
     (0, "real"), (1, "ai_generated"), (1.0, "ai_generated"), ("ai_generated", "ai_generated"), ("REAL", "real")],
)  # fmt: skip
def test_the_default_table_maps_the_common_label_values(value: object, label: str) -> None:
    assert LabelMap.with_pairs([]).label_of(value)[0] == label


@pytest.mark.parametrize(
    ("value", "why"),
    [(None, "missing label"), ("", "missing label"), ("maybe", "unknown label 'maybe'"), (2, "unknown label '2'"),
     (True, "unknown label 'true'"), (0.5, "unknown label '0.5'"), ([1], "a label is a number or text")],
)  # fmt: skip
def test_a_value_the_table_does_not_know_is_an_error_never_a_guess(value: object, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        LabelMap.with_pairs([]).label_of(value)


def test_the_label_map_adds_values_and_overrides_defaults() -> None:
    labels = LabelMap.with_pairs(["0=ai_generated,1=real", "Photo = real"])
    assert labels.label_of(0) == ("ai_generated", "0") and labels.label_of(1) == ("real", "1")
    assert labels.label_of("photo") == ("real", "photo") and labels.label_of("fake")[0] == "ai_generated"
    with pytest.raises(ValueError, match="not VALUE=LABEL"):
        parse_pairs(["fake"])
    with pytest.raises(ValueError, match="must be ai_generated or real"):
        parse_pairs(["fake=ai"])
    with pytest.raises(ValueError, match="label_map"):  # refused as a setting, before anything runs
        EvaluationSettings.model_validate({"dataset": {"label_map": ["fake=maybe"]}})


def test_class_label_names_decide_before_the_table() -> None:
    """A ClassLabel column (names ["fake", "real"]) counts 0 as fake: the dataset's names, not the 0/1 default."""
    labels = LabelMap.with_pairs([])
    assert labels.label_of(0, ["fake", "real"]) == ("ai_generated", "fake")
    assert labels.label_of(1, ["fake", "real"]) == ("real", "real")
    with pytest.raises(ValueError, match="outside the column's 2 class names"):
        labels.label_of(2, ["fake", "real"])


@pytest.mark.parametrize(
    ("value", "boxes"),
    [(None, ()), ([], ()), ([10, 20, 30, 40], ((10, 20, 30, 40),)), ([[1.4, 2.6, 9.5, 9]], ((1, 3, 10, 9),)),
     ([[0, 0, 5, 5], (6, 6, 8, 9)], ((0, 0, 5, 5), (6, 6, 8, 9)))],
)  # fmt: skip
def test_boxes_are_pixel_corners_one_or_many(value: object, boxes: tuple[Any, ...]) -> None:
    assert parse_boxes(value) == boxes


@pytest.mark.parametrize(
    ("value", "why"),
    [("10,20,30,40", "must be a list"), ([[1, 2, 3]], "box 0 is not four numbers"), ([[5, 5, 5, 9]], "no area"),
     ([[0, 0, 4, 4], [-1, 0, 4, 4]], "box 1 has a coordinate"), ([[0, 0, float("nan"), 4]], "not a pixel position"),
     ([[0, 0, True, 4]], "not four numbers")],
)  # fmt: skip
def test_a_malformed_box_is_an_error(value: object, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_boxes(value)


def test_the_fingerprint_ignores_order_and_sees_labels_and_sizes() -> None:
    lines = [fingerprint_line("a.png", "real", 10), fingerprint_line("b.png", "ai_generated", None)]
    assert fingerprint(lines) == fingerprint(reversed(lines))
    assert fingerprint(lines) != fingerprint([fingerprint_line("a.png", "ai_generated", 10), lines[1]])
    assert fingerprint(lines) != fingerprint([fingerprint_line("a.png", "real", 11), lines[1]])
    # what the docs say: sorted lines, newline-terminated, sha256
    expected = hashlib.sha256(b"a.png\treal\t10\nb.png\tai_generated\t-\n").hexdigest()
    assert fingerprint(lines) == f"sha256:{expected}"


# ---------------------------------------------------------------- image folders


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_a_folder_reads_label_folders_under_each_generator(tmp_path: Path) -> None:
    root = tmp_path / "bench"
    _write(root / "sdv14" / "0_real" / "a.png", SAMPLES[0].data)
    _write(root / "sdv14" / "1_fake" / "b.jpg", SAMPLES[1].data)
    _write(root / "midjourney" / "nature" / "c.webp", SAMPLES[2].data)  # GenImage's names
    _write(root / "midjourney" / "ai" / "d.png", SAMPLES[3].data)
    _write(root / "midjourney" / "ai" / "notes.txt", b"not an image")
    _write(root / "midjourney" / "ai" / ".DS_Store", b"x")
    source = _open(root)
    assert detect_format(str(root)) == "folder" and source.format == "folder" and source.name == "bench"
    rows, images = _both(source)
    assert [(i.item_id, i.label, i.source, i.raw_label) for i in _items(rows)] == [
        ("midjourney/ai/d.png", "ai_generated", "midjourney", "ai"),
        ("midjourney/nature/c.webp", "real", "midjourney", "nature"),
        ("sdv14/0_real/a.png", "real", "sdv14", "0_real"),
        ("sdv14/1_fake/b.jpg", "ai_generated", "sdv14", "1_fake"),
    ]
    assert images == [SAMPLES[3].data, SAMPLES[2].data, SAMPLES[0].data, SAMPLES[1].data]
    assert source.describe()["ignored_files"] == {".txt": 1, "hidden": 1}


def test_folder_sources_cut_to_a_depth_and_default_to_the_root(tmp_path: Path) -> None:
    cnnspot = tmp_path / "test"
    _write(cnnspot / "progan" / "airplane" / "0_real" / "a.png", SAMPLES[0].data)
    _write(cnnspot / "progan" / "cat" / "1_fake" / "b.png", SAMPLES[1].data)
    assert {i.source for i in _items(list(_open(cnnspot).rows()))} == {"progan/airplane", "progan/cat"}
    assert {i.source for i in _items(list(_open(cnnspot, source_depth=1).rows()))} == {"progan"}
    flat = tmp_path / "flat"
    _write(flat / "real" / "a.png", SAMPLES[0].data)
    assert [i.source for i in _items(list(_open(flat).rows()))] == ["flat"]


def test_folder_images_without_one_label_folder_are_problems(tmp_path: Path) -> None:
    root = tmp_path / "d"
    _write(root / "gen" / "0_real" / "ok.png", SAMPLES[0].data)
    _write(root / "gen" / "masks" / "m.png", SAMPLES[1].data)
    _write(root / "real" / "fake" / "both.png", SAMPLES[2].data)
    rows = list(_open(root).rows())
    problems = {Path(p.location).name: p.reason for p in _problems(rows)}
    assert "not under a label folder" in problems["m.png"] and "--label-map" in problems["m.png"]
    assert "more than one label folder on its path (real, fake)" in problems["both.png"]
    assert [i.item_id for i in _items(rows)] == ["gen/0_real/ok.png"]
    # named, the folder becomes a label folder
    mapped = _items(list(_open(root, label_map=["masks=ai_generated"]).rows()))
    assert {i.item_id: i.label for i in mapped}["gen/masks/m.png"] == "ai_generated"


def test_a_folder_image_that_cannot_be_read_is_a_reading_problem(tmp_path: Path) -> None:
    root = tmp_path / "d"
    _write(root / "1_fake" / "ok.png", SAMPLES[0].data)
    (root / "1_fake" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    rows, images = _both(_open(root))
    assert [i.item_id for i in _items(rows)] == ["1_fake/gone.png", "1_fake/ok.png"]
    assert isinstance(images[0], Problem) and images[0].phase == "reading" and "unreadable" in images[0].reason
    assert images[1] == SAMPLES[0].data


# ---------------------------------------------------------------- manifests


def _jsonl(path: Path, lines: list[object]) -> Path:
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


def test_a_jsonl_manifest_reads_paths_labels_boxes_and_explanations(tmp_path: Path) -> None:
    _write(tmp_path / "imgs" / "fake" / "a.png", SAMPLES[0].data)
    _write(tmp_path / "imgs" / "real" / "b.jpg", SAMPLES[1].data)
    manifest = _jsonl(
        tmp_path / "trace.jsonl",
        [
            {"image": "imgs/fake/a.png", "label": "fake", "boxes": [[4, 4, 30, 20]], "explanation": "odd hands"},
            "",
            {"image": "imgs/real/b.jpg", "label": 0, "source": "coco", "id": "b-1"},
        ],
    )
    assert detect_format(str(manifest)) == "manifest"
    rows, images = _both(_open(manifest))
    assert rows == [
        EvalItem(
            "imgs/fake/a.png", "ai_generated", "fake", "imgs/fake", f"{manifest}:1", ((4, 4, 30, 20),), "odd hands"
        ),
        EvalItem("b-1", "real", "0", "coco", f"{manifest}:3"),
    ]
    assert images == [SAMPLES[0].data, SAMPLES[1].data]


def test_manifest_rows_with_problems_are_reported_by_line(tmp_path: Path) -> None:
    _write(tmp_path / "a.png", SAMPLES[0].data)
    manifest = _jsonl(
        tmp_path / "m.jsonl",
        [
            {"image": "a.png", "label": "fake"},
            {"image": "a.png"},  # no label
            {"image": "b.png", "label": "maybe"},  # unknown label
            {"label": "real"},  # no image
            "{not json",
            "[1, 2]",
            {"image": "c.png", "label": "real", "boxes": [[1, 2, 3]]},
            {"image": "a.png", "label": "real"},  # same id (its path) as line 1
            {"image": "gone.png", "label": "real"},
            {"image": "https://example.com/x.png", "label": "real"},
        ],
    )
    rows, images = _both(_open(manifest))
    reasons = {p.location.rsplit(":", 1)[1]: p.reason for p in _problems(rows)}
    assert reasons["2"] == "missing label (key 'label')"
    assert reasons["3"].startswith("unknown label 'maybe'") and "--label-map maybe=ai_generated" in reasons["3"]
    assert reasons["4"] == "no image path under 'image'"
    assert reasons["5"].startswith("not JSON") and reasons["6"].startswith("not an object")
    assert reasons["7"].startswith("box 0 is not four numbers")
    assert reasons["8"] == f"duplicate id 'a.png' (first at {manifest}:1)"
    assert [i.location for i in _items(rows)] == [f"{manifest}:{n}" for n in (1, 9, 10)]
    assert len(images) == len(rows) == 10
    assert images[0] == SAMPLES[0].data
    assert isinstance(images[8], Problem) and "unreadable" in images[8].reason
    assert isinstance(images[9], Problem) and "is a URL" in images[9].reason


def test_a_json_manifest_is_a_list_and_its_keys_can_be_renamed(tmp_path: Path) -> None:
    _write(tmp_path / "pics" / "x.png", SAMPLES[0].data)
    manifest = tmp_path / "fakeclue.json"
    manifest.write_text(json.dumps([{"img": "x.png", "cls": "fake", "gen": "doc"}, 7]))
    source = _open(
        manifest, columns={"image": "img", "label": "cls", "source": "gen"}, image_root=str(tmp_path / "pics")
    )
    rows, images = _both(source)
    assert [(i.item_id, i.label, i.source) for i in _items(rows)] == [("x.png", "ai_generated", "doc")]
    assert _problems(rows)[0].location == f"{manifest}[1]" and images[0] == SAMPLES[0].data
    manifest.write_text(json.dumps({"images": []}))
    with pytest.raises(BadInputError, match="a JSON manifest is a list of objects"):
        list(_open(manifest).rows())


# ---------------------------------------------------------------- tables: Parquet, datasets, collect


def _hf_dataset(labels: list[int], names: list[str]) -> Any:
    import datasets

    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=names), "source": datasets.Value("string")}
    )
    return datasets.Dataset.from_dict(
        {
            "image": [{"bytes": SAMPLES[i].data, "path": None} for i in range(len(labels))],
            "label": labels,
            "source": ["gen-a" if i % 2 else "gen-b" for i in range(len(labels))],
        },
        features=features,
    )


def test_a_saved_dataset_reads_images_and_class_names(tmp_path: Path) -> None:
    saved = tmp_path / "saved"
    _hf_dataset([0, 1, 0], ["fake", "real"]).save_to_disk(str(saved))
    assert detect_format(str(saved)) == "hf_disk"
    rows, images = _both(_open(saved))
    assert [(i.item_id, i.label, i.raw_label, i.source) for i in _items(rows)] == [
        ("saved:0", "ai_generated", "fake", "gen-b"),
        ("saved:1", "real", "real", "gen-a"),
        ("saved:2", "ai_generated", "fake", "gen-b"),
    ]
    assert images == [SAMPLES[0].data, SAMPLES[1].data, SAMPLES[2].data]


def test_a_saved_dataset_dict_is_read_by_split(tmp_path: Path) -> None:
    import datasets

    saved = tmp_path / "dd"
    datasets.DatasetDict(
        {"test": _hf_dataset([1], ["real", "fake"]), "validation": _hf_dataset([0, 0], ["real", "fake"])}
    ).save_to_disk(str(saved))
    assert [i.label for i in _items(list(_open(saved).rows()))] == ["ai_generated"]
    with pytest.raises(BadInputError, match="holds the splits test, validation, not 'train'"):
        _open(saved, split="train")
    assert len(_items(list(_open(saved / "validation").rows()))) == 2  # a split's folder, directly


def test_hugging_face_parquet_files_are_read_by_split_with_their_class_names(tmp_path: Path) -> None:
    data = tmp_path / "hub-export" / "data"
    data.mkdir(parents=True)
    _hf_dataset([0, 1], ["fake", "real"]).to_parquet(str(data / "test-00000-of-00001.parquet"))
    _hf_dataset([1, 1, 1], ["fake", "real"]).to_parquet(str(data / "train-00000-of-00001.parquet"))
    root = tmp_path / "hub-export"
    assert detect_format(str(root)) == "parquet"
    rows, images = _both(_open(root))
    assert [(i.item_id, i.label) for i in _items(rows)] == [
        ("data/test-00000-of-00001.parquet:0", "ai_generated"),
        ("data/test-00000-of-00001.parquet:1", "real"),
    ]
    assert images == [SAMPLES[0].data, SAMPLES[1].data]
    assert _open(root).describe()["not_read"] == 1
    assert len(_items(list(_open(root, split="train").rows()))) == 3
    only = tmp_path / "only-train"
    only.mkdir()
    _hf_dataset([1], ["fake", "real"]).to_parquet(str(only / "train.parquet"))
    with pytest.raises(BadInputError, match="holds the splits train but none named 'test'"):
        _open(only)


@pytest.mark.parametrize(
    ("relative", "split"),
    [("data/test-00000-of-00002.parquet", "test"), ("validation/0000.parquet", "validation"),
     ("train_part.parquet", "train"), ("latest.parquet", None), ("contest-1.parquet", None)],
)  # fmt: skip
def test_a_parquet_files_split_is_in_its_folders_or_first_word(relative: str, split: str | None) -> None:
    assert split_of(Path(relative)) == split


def test_plain_parquet_with_string_labels_paths_and_renamed_columns(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    _write(tmp_path / "files" / "x.png", SAMPLES[0].data)
    table = pa.table(
        {
            "picture": pa.array([{"bytes": SAMPLES[1].data, "path": None}, {"bytes": None, "path": "x.png"}, None]),
            "truth": ["synthetic", "authentic", "real"],
            "regions": [[[1, 1, 9, 9]], None, None],
        }
    )
    pq.write_table(table, tmp_path / "plain.parquet")
    source = _open(tmp_path / "plain.parquet", columns={"image": "picture", "label": "truth", "boxes": "regions"},
                   image_root=str(tmp_path / "files"))  # fmt: skip
    rows, images = _both(source)
    assert [(i.label, i.boxes, i.source) for i in _items(rows)] == [
        ("ai_generated", ((1, 1, 9, 9),), "plain"),
        ("real", (), "plain"),
        ("real", (), "plain"),
    ]
    assert images[:2] == [SAMPLES[1].data, SAMPLES[0].data]
    assert isinstance(images[2], Problem) and images[2].reason == "no image in this row"
    with pytest.raises(
        BadInputError,
        match=r"no label column 'label' \(columns: picture, truth, regions\); name it with --label-column",
    ):
        list(_open(tmp_path / "plain.parquet", columns={"image": "picture"}).rows())


def test_collect_output_keeps_its_columns_ids_and_split(tmp_path: Path) -> None:
    records = [
        TrainingRecord(
            event_id=f"evt-{i}", label="ai_generated" if i % 2 else "real", image_bytes=SAMPLES[i].data,
            image_sha256=hashlib.sha256(SAMPLES[i].data).hexdigest(), width=64, height=48,
            boxes=[(1, 2, 30, 40)] if i == 1 else [], source="cam" if i % 2 == 0 else "gen", split="test",
        )
        for i in range(3)
    ]  # fmt: skip
    write_dataset(tmp_path / "reviewed", records, {"name": "reviewed"})
    assert detect_format(str(tmp_path / "reviewed")) == "collect"
    source = _open(tmp_path / "reviewed")
    rows, images = _both(source)
    assert [(i.item_id, i.label, i.source, i.boxes) for i in _items(rows)] == [
        ("evt-0", "real", "cam", ()),
        ("evt-1", "ai_generated", "gen", ((1, 2, 30, 40),)),
        ("evt-2", "real", "cam", ()),
    ]
    assert images == [SAMPLES[0].data, SAMPLES[1].data, SAMPLES[2].data]
    assert source.describe()["manifest"]["counts"] == {"train": 0, "test": 3}
    with pytest.raises(BadInputError, match=r"the train split of .* is empty: nothing to evaluate"):
        _open(tmp_path / "reviewed", split="train")


# ---------------------------------------------------------------- formats and the hub


def test_formats_are_detected_and_a_missing_dataset_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="does not exist"):
        _open(tmp_path / "nowhere")
    (tmp_path / "list.csv").write_text("a,b\n")
    with pytest.raises(BadInputError, match=r"\.json, \.jsonl or \.parquet"):
        detect_format(str(tmp_path / "list.csv"))
    assert detect_format("hf:org/name:validation") == "hf_hub"
    assert detect_format(str(tmp_path)) == "folder"  # nothing else matches: label folders, or problems
    forced = _open(tmp_path, format="folder")
    assert forced.format == "folder"


def test_only_a_hub_name_reaches_the_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    calls: list[tuple[str, str]] = []

    def load_dataset(name: str, split: str) -> Any:
        calls.append((name, split))
        if name == "org/offline":
            raise ConnectionError("Couldn't reach 'org/offline' on the Hub (LocalEntryNotFoundError)")
        return _hf_dataset([1, 0], ["real", "fake"])

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    saved = tmp_path / "saved"
    _hf_dataset([0], ["real", "fake"]).save_to_disk(str(saved))
    _write(tmp_path / "folder" / "0_real" / "a.png", SAMPLES[0].data)
    for local in (saved, tmp_path / "folder"):
        list(_open(local).rows())
    assert calls == []  # local datasets never call the hub
    source = _open("hf:org/bench:validation")
    assert [i.label for i in _items(list(source.rows()))] == ["ai_generated", "real"]
    assert source.name == "org/bench" and calls == [("org/bench", "validation")]
    _open("hf:org/bench")
    assert calls[-1] == ("org/bench", "test")  # the split setting when the name has none
    with pytest.raises(BadInputError, match=r"cannot load 'org/offline' .* save_to_disk .* --dataset"):
        _open("hf:org/offline")


def test_an_unreadable_parquet_file_is_refused_with_its_name(tmp_path: Path) -> None:
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(BadInputError, match=r"broken.parquet is not a readable Parquet file"):
        list(_open(tmp_path / "broken.parquet").rows())


def test_settings_defaults_are_what_the_readme_documents() -> None:
    settings = DatasetSettings()
    assert settings.format == "auto" and settings.max_problem_rate == 0.01 and settings.label_map == []
    assert settings.columns.model_dump() == {
        "image": "image", "label": "label", "boxes": "boxes", "explanation": "explanation", "source": "source", "id": "id"
    }  # fmt: skip
    assert EvaluationSettings().stages == "model"


# ---------------------------------------------------------------- bounded reads


def test_an_image_file_over_the_byte_limit_is_read_only_up_to_just_past_it(tmp_path: Path) -> None:
    big = b"\xff\xd8" + bytes(50_000)  # a 50 KB "JPEG": the detector refuses anything over its byte limit
    (tmp_path / "set" / "1_fake").mkdir(parents=True)
    (tmp_path / "set" / "1_fake" / "big.jpg").write_bytes(big)
    (tmp_path / "set" / "1_fake" / "small.png").write_bytes(SAMPLES[1].data)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"image": "set/1_fake/big.jpg", "label": "fake"}) + "\n")
    for spec in (tmp_path / "set", manifest):
        source = open_dataset(str(spec), _settings(), "test", max_image_bytes=4096)
        images = [image for image in source.images() if isinstance(image, bytes)]
        assert len(images[0]) == 4097 and images[0] == big[:4097]  # still over the limit: refused as before
        if spec != manifest:
            assert images[1] == SAMPLES[1].data  # a file within the limit is read whole
    assert _open(tmp_path / "set").max_image_bytes == 20 * 1024 * 1024  # the detector's default limit
