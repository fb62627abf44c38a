"""`prodseg-data convert SRC --to DST` on what CVAT, Roboflow, ultralytics and LabelMe really export:
the layout is detected, the masks come back exactly, the user's class names are kept, and the result
passes `prodseg-data check`."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from click.testing import CliRunner

from prodseg.data.check import check_dataset
from prodseg.data.cli import main
from prodseg.data.formats.convert import convert
from prodseg.data.formats.detect import detect
from prodseg.data.formats.importers import ImportOptions
from prodseg.data.imageio import read_mask
from prodseg.data.layout import ShelfDataset
from tests.data.tool_exports import BUILDERS, NAMES, circle_mask, cvat_coco, labelme, triangle_mask


def masks_of(root) -> dict[str, np.ndarray]:
    return {p.stem: read_mask(p) for p in sorted((root / "masks").glob("*.png"))}


def splits_of(root) -> dict[str, list[str]]:
    ds = ShelfDataset(root)
    return {s: ds.split_stems(s) for s in ("train", "val", "test") if (root / "splits" / f"{s}.txt").exists()}


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("tool", list(BUILDERS))
def test_export_imports_exactly_without_from(tmp_path, tool: str) -> None:
    build, fmt = BUILDERS[tool]
    src, want = build(tmp_path / "export")
    assert detect(src) == fmt
    r = run("convert", src, "--to", tmp_path / "mine")
    assert r.exit_code == 0, r.output
    assert r.output.strip().endswith(f"from {fmt} {src}")
    got = masks_of(tmp_path / "mine")
    assert sorted(got) == sorted(want)
    for stem, mask in want.items():
        assert np.array_equal(got[stem], mask), stem
    assert ShelfDataset(tmp_path / "mine").classes.names == NAMES
    assert check_dataset(tmp_path / "mine") == []
    coco = json.loads((tmp_path / "mine" / "instances.json").read_text())
    assert [c["name"] for c in coco["categories"]] == list(NAMES[1:])
    assert (tmp_path / "mine" / "labels").is_dir()


def test_cvat_masks_are_instances_by_default_and_counted(tmp_path, caplog) -> None:
    src, want = cvat_coco(tmp_path / "cvat")
    with caplog.at_level(logging.INFO):
        out = convert(src, tmp_path / "mine")
    messages = [r.getMessage() for r in caplog.records]
    assert any("skipped 3 box-only annotations" in m for m in messages), messages
    assert any(
        "6 mask region(s) marked iscrowd=1 imported as instances (--crowd instance" in m for m in messages
    ), messages
    anns = json.loads((out / "instances.json").read_text())["annotations"]
    assert [a["iscrowd"] for a in anns] == [0, 0, 0] * 3
    assert (out / "labels" / "store_a__img1.txt").read_text().count("\n") == 3
    assert any(
        "2 images share a file name" in m and "store_a/img1.jpg -> store_a__img1)" in m for m in messages
    ), messages


def test_cvat_masks_as_ignore_regions_on_request(tmp_path, caplog) -> None:
    src, _ = cvat_coco(tmp_path / "cvat")
    with caplog.at_level(logging.INFO):
        out = convert(src, tmp_path / "mine", import_opts=ImportOptions(crowd="ignore"))
    assert any(
        "6 mask region(s) marked iscrowd=1 imported as ignore regions (255) (--crowd ignore" in r.getMessage()
        for r in caplog.records
    )
    mask = masks_of(out)["store_b__img1"]
    assert (mask[circle_mask()] == 255).all()
    assert (mask[triangle_mask()] == 255).all()
    assert check_dataset(out) == []


def test_crowd_option_on_the_command_line(tmp_path) -> None:
    src, _ = cvat_coco(tmp_path / "cvat")
    assert run("convert", src, "--to", tmp_path / "mine", "--crowd", "ignore").exit_code == 0
    assert (masks_of(tmp_path / "mine")["store_a__img1"] == 255).any()


@pytest.mark.parametrize(
    "tool, want",
    [
        ("cvat-segmentation-mask", {"train": ["frame_000000", "frame_000002"], "val": ["frame_000001"]}),
        ("roboflow-coco", {"train": ["a.rf.0f1e", "d.rf.41b0"], "val": ["b.rf.9c2d"], "test": ["c.rf.77aa"]}),
        ("roboflow-yolo", {"train": ["a.rf.0f1e", "d.rf.41b0"], "val": ["b.rf.9c2d"], "test": ["c.rf.77aa"]}),
        ("ultralytics", {"train": ["t0", "t1"], "val": ["store_a__img1", "store_b__img1"]}),
    ],
)
def test_tool_splits_become_dataset_splits(tmp_path, tool: str, want: dict) -> None:
    src, _ = BUILDERS[tool][0](tmp_path / "export")
    assert splits_of(convert(src, tmp_path / "mine")) == want


def test_cvat_segmentation_objects_become_instances(tmp_path) -> None:
    src, _ = BUILDERS["cvat-segmentation-mask"][0](tmp_path / "export")
    anns = json.loads((convert(src, tmp_path / "mine") / "instances.json").read_text())["annotations"]
    assert sorted(a["category_id"] for a in anns if a["image_id"] == 1) == [1, 1, 2]


def test_ultralytics_yaml_passed_itself(tmp_path) -> None:
    src, want = BUILDERS["ultralytics"][0](tmp_path / "export")
    out = convert(src / "shelves.yaml", tmp_path / "mine")
    assert sorted(masks_of(out)) == sorted(want)


def test_labelme_with_a_classes_file(tmp_path) -> None:
    src, want = labelme(tmp_path / "lm")
    (tmp_path / "labels.txt").write_text("__ignore__\n_background_\ncan\nbottle\nshelf\n")
    opts = ImportOptions(classes=tmp_path / "labels.txt")
    out = convert(src, tmp_path / "mine", "labelme", import_opts=opts)
    assert ShelfDataset(out).classes.names == ("background", "can", "bottle", "shelf")
    swapped = want["img2"].copy()
    swapped[want["img2"] == 1], swapped[want["img2"] == 2] = 2, 1
    assert np.array_equal(masks_of(out)["img2"], swapped)
    assert check_dataset(out) == []


def test_roboflow_project_category_is_not_a_class(tmp_path) -> None:
    src, _ = BUILDERS["roboflow-coco"][0](tmp_path / "rf")
    out = convert(src, tmp_path / "mine")
    assert "shelf-products" not in ShelfDataset(out).classes.names


def test_unknown_layout_exits_2_listing_what_was_looked_for(tmp_path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "notes.txt").write_text("hello")
    r = run("convert", tmp_path / "src", "--to", tmp_path / "out")
    assert r.exit_code == 2
    line = r.output.strip()
    assert "\n" not in line
    assert line.startswith(f"error: {tmp_path / 'src'}: unknown dataset layout: no ")
    for wanted in (
        "_annotations.coco.json",
        "instances.json",
        "labelmap.txt",
        "data.yaml",
        "*.json with 'shapes'",
        "labels/",
        "masks/",
    ):
        assert wanted in line, wanted
    assert not (tmp_path / "out").exists()


def test_own_exports_are_detected(tmp_path) -> None:
    from tests.data.formats_builders import build_dataset

    build_dataset(tmp_path / "ds")
    assert detect(tmp_path / "ds") == "prodseg"
    for fmt in ("coco", "yolo", "color-masks"):
        out = convert(tmp_path / "ds", tmp_path / fmt, "prodseg", fmt)
        assert detect(out) == fmt
        back = convert(out, tmp_path / f"back-{fmt}")
        assert check_dataset(back) == []
