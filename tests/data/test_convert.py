"""convert(): every importer and exporter through the prodseg folder; exact round trips where the
format allows, nothing left behind when a conversion fails."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from pycocotools.coco import COCO

from prodseg.data.formats.convert import READERS, WRITERS, convert
from prodseg.data.imageio import read_mask, write_mask
from prodseg.data.layout import ShelfDataset
from prodseg.data.taxonomy import SHELF10
from prodseg.errors import BadInput
from tests.data.formats_builders import build_dataset


def masks_of(root) -> dict[str, np.ndarray]:
    return {p.stem: read_mask(p) for p in sorted((root / "masks").glob("*.png"))}


def splits_of(root) -> dict[str, list[str]]:
    ds = ShelfDataset(root)
    return {s: ds.split_stems(s) for s in ("train", "val")}


@pytest.fixture
def src(tmp_path):
    build_dataset(tmp_path / "src")
    return tmp_path / "src"


def test_registries_are_complete() -> None:
    assert set(WRITERS) == {"coco", "yolo", "color-masks", "prodseg"}
    assert set(READERS) == {*WRITERS, "voc", "labelme"}


@pytest.mark.parametrize("fmt", ["coco", "color-masks", "prodseg"])
def test_exact_round_trip(src, tmp_path, fmt: str) -> None:
    convert(src, tmp_path / "out", "prodseg", fmt)
    back = convert(tmp_path / "out", tmp_path / "back", fmt, "prodseg")
    want, got = masks_of(src), masks_of(back)
    assert list(got) == list(want)
    for stem in want:
        assert np.array_equal(got[stem], want[stem]), stem
    assert (want["img0"] == 255).any()  # the ignore region made it through
    assert splits_of(back) == splits_of(src)
    assert ShelfDataset(back).classes == SHELF10
    assert (back / "images" / "img0.png").read_bytes() == (src / "images" / "img0.png").read_bytes()


def test_coco_export_loads_in_pycocotools(src, tmp_path) -> None:
    out = convert(src, tmp_path / "coco", "prodseg", "coco")
    coco = COCO(str(out / "instances.json"))
    assert len(coco.getImgIds()) == 3
    assert len(coco.getAnnIds()) == 15
    assert len(coco.getAnnIds(iscrowd=True)) == 3


def test_import_writes_instances_and_yolo_labels(src, tmp_path) -> None:
    back = convert(convert(src, tmp_path / "c", "prodseg", "coco"), tmp_path / "b", "coco")
    assert json.loads((back / "instances.json").read_text())["annotations"]
    assert (back / "labels" / "img0.txt").read_text().count("\n") == 4  # crowd not in YOLO
    assert (back / "dataset.yaml").is_file()


def test_yolo_round_trip_is_close(src, tmp_path) -> None:
    convert(src, tmp_path / "y", "prodseg", "yolo")
    back = convert(tmp_path / "y", tmp_path / "b", "yolo", "prodseg")
    assert splits_of(back) == splits_of(src)
    for stem, want in masks_of(src).items():
        got = masks_of(back)[stem]
        labelled = want != 255  # YOLO has no ignore regions
        assert (got[labelled] == want[labelled]).mean() > 0.97
        assert np.array_equal(got[5:20, 3:30], want[5:20, 3:30])  # the rectangle is exact


def test_masks_only_dataset_exports_connected_components(tmp_path) -> None:
    build_dataset(tmp_path / "src", with_instances=False)
    convert(tmp_path / "src", tmp_path / "c", "prodseg", "coco")
    back = convert(tmp_path / "c", tmp_path / "b", "coco", "prodseg")
    for stem, want in masks_of(tmp_path / "src").items():
        assert np.array_equal(masks_of(back)[stem], want)


def test_stale_instances_json_falls_back_to_the_masks(src, tmp_path) -> None:
    mask = read_mask(src / "masks" / "img1.png")
    mask[0:4, 0:4] = 9
    write_mask(src / "masks" / "img1.png", mask)
    convert(src, tmp_path / "c", "prodseg", "coco")
    back = convert(tmp_path / "c", tmp_path / "b", "coco", "prodseg")
    assert np.array_equal(masks_of(back)["img1"], mask)


def test_coco_json_file_as_source_without_splits(src, tmp_path) -> None:
    shutil.rmtree(src / "splits")
    back = convert(src / "instances.json", tmp_path / "b", "coco")
    assert splits_of(back) == {"train": ["img0", "img1"], "val": ["img2"]}  # 80/20 by position


def test_coco_annotation_files_per_split(src, tmp_path) -> None:
    data = json.loads((src / "instances.json").read_text())
    (tmp_path / "cc" / "annotations").mkdir(parents=True)
    for split, ids in {"train": [1, 2], "val": [3]}.items():
        part = {
            **data,
            "images": [i for i in data["images"] if i["id"] in ids],
            "annotations": [a for a in data["annotations"] if a["image_id"] in ids],
        }
        (tmp_path / "cc" / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(part))
    shutil.copytree(src / "images", tmp_path / "cc" / "images")
    back = convert(tmp_path / "cc", tmp_path / "b", "coco")
    assert splits_of(back) == {"train": ["img0", "img1"], "val": ["img2"]}
    assert all(np.array_equal(masks_of(back)[k], v) for k, v in masks_of(src).items())


def test_colour_masks_without_classes_yaml_use_shelf10(src, tmp_path) -> None:
    out = convert(src, tmp_path / "cm", "prodseg", "color-masks")
    (out / "classes.yaml").unlink()
    back = convert(out, tmp_path / "b", "color-masks")
    assert ShelfDataset(back).classes == SHELF10


def test_unknown_format_lists_the_valid_ones(src, tmp_path) -> None:
    with pytest.raises(BadInput, match="unknown source format 'pascal'; choose one of coco, yolo, color-"):
        convert(src, tmp_path / "x", "pascal")
    with pytest.raises(BadInput, match="unknown target format 'tfrecord'"):
        convert(src, tmp_path / "x", "prodseg", "tfrecord")
    assert not (tmp_path / "x").exists()


def test_non_empty_target_is_refused_and_untouched(src, tmp_path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    with pytest.raises(BadInput, match="busy: already exists"):
        convert(src, tmp_path / "busy", "prodseg", "coco")
    assert [p.name for p in (tmp_path / "busy").iterdir()] == ["keep.txt"]


def test_failed_conversion_leaves_nothing_behind(src, tmp_path) -> None:
    (src / "images" / "img2.png").unlink()  # instances.json still names it
    with pytest.raises(BadInput, match="image 'img2.png' not found"):
        convert(src / "instances.json", tmp_path / "out" / "ds", "coco")
    assert list((tmp_path / "out").iterdir()) == []


def test_missing_source(tmp_path) -> None:
    with pytest.raises(BadInput, match="nothing: source not found"):
        convert(tmp_path / "nothing", tmp_path / "x", "coco")


def test_synthetic_dataset_round_trips_through_coco(tiny_dataset, tmp_path) -> None:
    convert(tiny_dataset, tmp_path / "coco", "prodseg", "coco")
    COCO(str(tmp_path / "coco" / "instances.json"))
    back = convert(tmp_path / "coco", tmp_path / "back", "coco", "prodseg")
    want, got = masks_of(tiny_dataset), masks_of(back)
    assert list(got) == list(want) and len(want) == 12
    assert all(np.array_equal(got[k], want[k]) for k in want)
    assert splits_of(back) == splits_of(tiny_dataset)


def test_coco_polygon_export_is_close_and_exact_for_rectangles(src, tmp_path) -> None:
    out = convert(src, tmp_path / "p", "prodseg", "coco", coco_encoding="polygon")
    anns = json.loads((out / "instances.json").read_text())["annotations"]
    assert [isinstance(a["segmentation"], list) for a in anns[:5]] == [True, True, True, True, False]
    back = convert(out, tmp_path / "b", "coco")
    for stem, want in masks_of(src).items():
        got = masks_of(back)[stem]
        assert (got == want).mean() > 0.97
        assert np.array_equal(got[5:20, 3:30], want[5:20, 3:30])
    with pytest.raises(BadInput, match="unknown COCO mask format 'bitmap'; choose one of rle, polygon"):
        convert(src, tmp_path / "x", "prodseg", "coco", coco_encoding="bitmap")


def test_existing_empty_target_folder_is_used(src, tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    out = convert(src, tmp_path / "empty", "prodseg", "color-masks")
    assert (out / "masks" / "img0.png").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
