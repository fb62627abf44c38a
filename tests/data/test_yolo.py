"""YOLO-seg labels: normalised polygons, exact for rectangles, close for curves; both folder layouts."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from prodseg.data.formats.geometry import fill_polygon
from prodseg.data.formats.yolo import (
    label_line,
    parse_label_line,
    read_names,
    read_yolo,
    read_yolo_splits,
    write_yolo,
)
from prodseg.data.imageio import write_image
from prodseg.data.instances import ImageRecord, Instance
from prodseg.data.taxonomy import SHELF10, ClassList
from prodseg.errors import BadInput
from tests.data.formats_builders import H, W, disc, instances, iou, rect, triangle


def _write(root, n: int = 2, splits=None) -> list[ImageRecord]:
    records = [ImageRecord(f"img{k}.png", H, W, instances(k)) for k in range(n)]
    for r in records:
        write_image(root / "images" / r.file_name, np.zeros((H, W, 3), np.uint8))
    write_yolo(root, records, SHELF10, splits)
    return records


def test_rectangle_line_is_exact_normalised_pixel_centres() -> None:
    line = label_line(Instance(2, rect(5, 20, 3, 30)), W, H)
    cls, *coords = line.split()
    assert cls == "1"  # semantic 2 (price_tag) -> YOLO class 1
    pts = np.array(coords, float).reshape(-1, 2) * [W, H]
    corners = sorted({tuple(p) for p in np.round(pts).astype(int).tolist()})
    assert corners == [(3, 5), (3, 19), (29, 5), (29, 19)]


def test_round_trip_exact_rectangles_close_curves(tmp_path) -> None:
    want = _write(tmp_path)
    got, classes = read_yolo(tmp_path)
    assert classes == SHELF10
    for g, w in zip(got, want, strict=True):
        assert [i.class_id for i in g.instances] == [1, 3, 5, 7]  # the crowd is not written
        assert np.array_equal(g.instances[0].mask, w.instances[0].mask)
        assert iou(g.instances[1].mask, w.instances[1].mask) > 0.9
        assert iou(g.instances[2].mask, w.instances[2].mask) > 0.9  # two parts joined in one line
        assert iou(g.instances[3].mask, w.instances[3].mask) > 0.9


def test_multi_part_instance_is_one_line_covering_both_parts(tmp_path) -> None:
    two = rect(30, 50, 4, 14) | rect(30, 50, 20, 26)
    line = label_line(Instance(5, two), W, H)
    assert line.count("\n") == 0
    _, poly = parse_label_line(line, 9, "x")
    filled = fill_polygon(poly * [W, H], (H, W))
    assert filled[two].all()  # every pixel of both parts; only a 1-pixel bridge is extra
    assert (filled & ~two).sum() <= 6


def test_crowd_and_empty_instances_write_no_line() -> None:
    assert label_line(Instance(4, rect(1, 5, 1, 5), iscrowd=True), W, H) is None
    assert label_line(Instance(4, np.zeros((H, W), bool)), W, H) is None


def test_single_pixel_instance_still_has_three_points() -> None:
    m = np.zeros((H, W), bool)
    m[10, 12] = True
    _, poly = parse_label_line(label_line(Instance(3, m), W, H), 9, "x")
    assert poly.shape == (3, 2)


def test_dataset_yaml_is_ultralytics_shaped_and_relocatable(tmp_path) -> None:
    _write(tmp_path, n=3, splits={"train": ["img0", "img1"], "val": ["img2"]})
    data = yaml.safe_load((tmp_path / "dataset.yaml").read_text())
    assert "path" not in data  # ultralytics then resolves against the YAML's folder
    assert data["names"] == dict(enumerate(SHELF10.thing_names))
    assert data["nc"] == 9
    assert (data["train"], data["val"]) == ("yolo_train.txt", "yolo_val.txt")
    assert (tmp_path / "yolo_val.txt").read_text() == "./images/img2.png\n"
    assert (tmp_path / "labels" / "img0.txt").read_text().count("\n") == 4


def test_without_splits_train_and_val_point_at_images(tmp_path) -> None:
    _write(tmp_path)
    data = yaml.safe_load((tmp_path / "dataset.yaml").read_text())
    assert data["train"] == data["val"] == "images"


def test_sub_split_layout(tmp_path) -> None:
    for split, stems in {"train": ["a", "b"], "val": ["c"]}.items():
        for s in stems:
            write_image(tmp_path / "images" / split / f"{s}.jpg", np.zeros((H, W, 3), np.uint8))
            (tmp_path / "labels" / split).mkdir(parents=True, exist_ok=True)
            line = label_line(Instance(9, disc(30, 30, 8)), W, H)
            (tmp_path / "labels" / split / f"{s}.txt").write_text(line)
    (tmp_path / "dataset.yaml").write_text(yaml.safe_dump({"names": list(SHELF10.thing_names)}))
    records, classes, splits = read_yolo_splits(tmp_path)
    assert splits == {"train": ["a", "b"], "val": ["c"]}
    assert [r.file_name for r in records] == ["train/a.jpg", "train/b.jpg", "val/c.jpg"]
    assert all(r.instances[0].class_id == 9 for r in records)


def test_image_without_label_file_has_no_instances(tmp_path) -> None:
    _write(tmp_path)
    (tmp_path / "labels" / "img1.txt").unlink()
    records, _ = read_yolo(tmp_path)
    assert records[1].instances == []


def test_names_list_or_dict_and_foreign_names(tmp_path) -> None:
    p = tmp_path / "dataset.yaml"
    p.write_text(yaml.safe_dump({"names": {1: "milk", 0: "cereal"}}))
    assert read_names(p).names == ("background", "cereal", "milk")
    p.write_text(yaml.safe_dump({"names": list(SHELF10.thing_names)}))
    assert read_names(p) == SHELF10
    p.write_text("nc: 3\n")
    with pytest.raises(BadInput, match="needs 'names'"):
        read_names(p)
    with pytest.raises(BadInput, match="dataset.yaml not found"):
        read_names(tmp_path / "x" / "dataset.yaml")


@pytest.mark.parametrize(
    "line, message",
    [
        ("a 0.1 0.1 0.2 0.2 0.3 0.3", "not a YOLO-seg line"),
        ("9 0.1 0.1 0.2 0.2 0.3 0.3", "class 9 is outside 0..8"),
        ("1 0.1 0.1 0.2 0.2", "got 4"),
        ("1 0.1 0.1 0.2 0.2 0.3", "got 5"),
        ("1 0.1 0.1 0.2 0.2 3.0 0.3", "normalised to 0..1"),
    ],
)
def test_malformed_lines(line: str, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        parse_label_line(line, 9, "labels/x.txt:3")


def test_bad_line_in_file_names_file_and_line(tmp_path) -> None:
    _write(tmp_path)
    (tmp_path / "labels" / "img0.txt").write_text("0 0.1 0.1 0.2 0.1 0.2 0.2\n12 0.1 0.1 0.2 0.1 0.2 0.2\n")
    with pytest.raises(BadInput, match=r"img0.txt:2: class 12"):
        read_yolo(tmp_path)


def test_custom_class_list(tmp_path) -> None:
    classes = ClassList(("background", "a", "b"), ((0, 0, 0), (1, 2, 3), (4, 5, 6)))
    rec = ImageRecord("z.png", H, W, [Instance(2, triangle())])
    write_image(tmp_path / "images" / "z.png", np.zeros((H, W, 3), np.uint8))
    write_yolo(tmp_path, [rec], classes)
    records, got = read_yolo(tmp_path)
    assert got.names == classes.names
    assert records[0].instances[0].class_id == 2


@pytest.mark.slow
def test_ultralytics_finds_images_and_labels(tmp_path) -> None:
    utils = pytest.importorskip("ultralytics.data.utils")
    _write(tmp_path, n=3, splits={"train": ["img0", "img1"], "val": ["img2"]})
    data = utils.check_det_dataset(str(tmp_path / "dataset.yaml"))
    assert data["nc"] == 9 and data["names"][0] == "shelf"
    from ultralytics.data.dataset import YOLODataset

    ds = YOLODataset(img_path=data["val"], imgsz=64, data=data, task="segment", augment=False)
    assert len(ds.labels) == 1
    assert len(ds.labels[0]["segments"]) == 4


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 60), st.integers(0, 60), st.integers(1, 40), st.integers(1, 40))
def test_any_rectangle_round_trips_exactly(y0: int, x0: int, h: int, w: int) -> None:
    m = rect(y0, min(H, y0 + h), x0, min(W, x0 + w))
    cid, poly = parse_label_line(label_line(Instance(4, m), W, H), 9, "x")
    assert cid == 4
    assert np.array_equal(fill_polygon(poly * [W, H], (H, W)), m)
