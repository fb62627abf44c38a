"""check_dataset: each kind of broken dataset is found, and all of them are listed at once."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from prodseg.data.check import check_dataset
from prodseg.data.imageio import write_mask
from prodseg.errors import BadInput
from tests.data.formats_builders import build_dataset


@pytest.fixture
def ds(tmp_path):
    build_dataset(tmp_path / "ds")
    return tmp_path / "ds"


def found(root) -> list[str]:
    return [str(p) for p in check_dataset(root)]


def only(root, fragment: str) -> str:
    problems = found(root)
    assert len(problems) == 1, problems
    assert fragment in problems[0], problems[0]
    return problems[0]


def test_clean_dataset_has_no_problems(ds) -> None:
    assert found(ds) == []


def test_synthetic_dataset_is_clean(tiny_dataset) -> None:
    assert found(tiny_dataset) == []


def test_missing_folder_is_bad_input(tmp_path) -> None:
    with pytest.raises(BadInput, match="dataset folder not found"):
        check_dataset(tmp_path / "nope")


def test_missing_mask(ds) -> None:
    (ds / "masks" / "img1.png").unlink()
    assert only(ds, "mask missing for image img1.png").startswith(str(ds / "masks" / "img1.png"))


def test_corrupt_image(ds) -> None:
    (ds / "images" / "img0.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    assert only(ds, "cannot decode").startswith(str(ds / "images" / "img0.png"))


def test_truncated_jpeg(ds) -> None:
    ok, buf = cv2.imencode(".jpg", np.zeros((64, 64, 3), np.uint8))
    (ds / "images" / "img0.png").unlink()
    (ds / "images" / "img0.jpg").write_bytes(buf.tobytes()[:40])
    only(ds, "img0.jpg: cannot decode")


def test_corrupt_mask(ds) -> None:
    (ds / "masks" / "img2.png").write_bytes(b"not a png")
    only(ds, "img2.png: cannot decode")


def test_colour_mask_in_masks_folder(ds) -> None:
    cv2.imwrite(str(ds / "masks" / "img2.png"), np.zeros((64, 64, 3), np.uint8))
    only(ds, "single-channel")


def test_size_mismatch(ds) -> None:
    write_mask(ds / "masks" / "img0.png", np.zeros((32, 64), np.uint8))
    only(ds, "size 64x32 differs from its image 64x64")


def test_label_outside_the_class_list(ds) -> None:
    mask = np.zeros((64, 64), np.uint8)
    mask[0, 0], mask[1, 1], mask[2, 2] = 12, 255, 10
    write_mask(ds / "masks" / "img0.png", mask)
    only(ds, "label values [10, 12] are outside the 10 classes")


def test_missing_classes_yaml(ds) -> None:
    (ds / "classes.yaml").unlink()
    only(ds, "classes.yaml is missing")


def test_split_naming_a_missing_image(ds) -> None:
    (ds / "splits" / "val.txt").write_text("img2\nghost\n")
    assert only(ds, "names 'ghost', which is not in images/").startswith(str(ds / "splits" / "val.txt"))


def test_empty_split(ds) -> None:
    (ds / "splits" / "val.txt").write_text("\n")
    only(ds, "val.txt: split is empty")


def test_missing_split(ds) -> None:
    (ds / "splits" / "train.txt").unlink()
    only(ds, "train.txt: split list missing")


def test_overlapping_splits(ds) -> None:
    (ds / "splits" / "val.txt").write_text("img2\nimg0\n")
    only(ds, "'img0' is also in split 'train' (splits overlap)")


def test_instances_json_that_does_not_parse(ds) -> None:
    (ds / "instances.json").write_text("{")
    only(ds, "instances.json: not valid JSON")


def test_instances_json_naming_a_missing_image(ds) -> None:
    data = json.loads((ds / "instances.json").read_text())
    data["images"][0]["file_name"] = "gone.png"
    (ds / "instances.json").write_text(json.dumps(data))
    only(ds, "image 'gone.png' is not in images/")


def test_yolo_label_that_does_not_parse(ds) -> None:
    from prodseg.data.formats.yolo import write_yolo
    from prodseg.data.taxonomy import SHELF10

    write_yolo(ds, [], SHELF10)
    (ds / "labels").mkdir()
    (ds / "labels" / "img0.txt").write_text("0 0.1 0.1 0.5 0.1 0.5 0.5\n3 0.1 nan?\n")
    only(ds, "img0.txt: line 2: not a YOLO-seg line")


def test_orphans(ds) -> None:
    write_mask(ds / "masks" / "extra.png", np.zeros((64, 64), np.uint8))
    assert "masks/extra.png: mask without an image" in only(ds, "extra")


def test_grayscale_rgba_and_16bit_images_are_not_problems(ds) -> None:
    cv2.imwrite(str(ds / "images" / "img0.png"), np.full((64, 64), 90, np.uint8))
    cv2.imwrite(str(ds / "images" / "img1.png"), np.full((64, 64, 4), 90, np.uint8))
    cv2.imwrite(str(ds / "images" / "img2.png"), np.full((64, 64, 3), 40000, np.uint16))
    assert found(ds) == []


def test_every_problem_is_listed(ds) -> None:
    (ds / "masks" / "img1.png").unlink()
    (ds / "images" / "img0.png").write_bytes(b"junk")
    (ds / "splits" / "val.txt").write_text("img0\n")
    (ds / "classes.yaml").write_text("names: [a, a]\n")
    problems = found(ds)
    assert len(problems) == 4, problems
    assert {p.split(": ", 1)[0].rsplit("/", 1)[-1] for p in problems} == {
        "img1.png",
        "img0.png",
        "val.txt",
        "classes.yaml",
    }


def test_instances_json_with_a_wrong_image_size(ds) -> None:
    data = json.loads((ds / "instances.json").read_text())
    data["images"][1]["width"] = 80
    # Its RLE masks stay 64x64: the file no longer agrees with itself either.
    (ds / "instances.json").write_text(json.dumps(data))
    only(ds, "annotation id 6: RLE 'size' [64, 64] differs from the image's [height, width] [64, 80]")
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != data["images"][1]["id"]]
    (ds / "instances.json").write_text(json.dumps(data))
    only(ds, "image 'img1.png' is 80x64 here but 64x64 in images/")
