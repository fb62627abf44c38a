"""COCO instances JSON: pycocotools reads what we write, and we read polygons, RLE and uncompressed RLE."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pycocotools.coco import COCO

from prodseg.data.formats.coco import read_coco, write_coco
from prodseg.data.instances import ImageRecord, Instance
from prodseg.data.taxonomy import SHELF10
from prodseg.errors import BadInput
from tests.data.formats_builders import H, W, disc, instances, iou, rect, triangle


def _records() -> list[ImageRecord]:
    return [ImageRecord(f"img{k}.png", H, W, instances(k)) for k in range(2)]


def test_rle_export_loads_in_pycocotools_with_exact_masks(tmp_path) -> None:
    path = write_coco(tmp_path / "instances.json", _records(), SHELF10)
    coco = COCO(str(path))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(SHELF10.thing_names)
    assert coco.getCatIds() == list(range(1, 10))
    for img_id, rec in zip(coco.getImgIds(), _records(), strict=True):
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id))
        assert [a["category_id"] for a in anns] == [i.class_id for i in rec.instances]
        assert [a["iscrowd"] for a in anns] == [0, 0, 0, 0, 1]
        for ann, inst in zip(anns, rec.instances, strict=True):
            assert np.array_equal(coco.annToMask(ann).astype(bool), inst.mask)
            assert ann["area"] == int(inst.mask.sum())


def test_bbox_and_area_are_exact(tmp_path) -> None:
    rec = ImageRecord("a.png", H, W, [Instance(2, rect(5, 20, 3, 30))])
    ann = json.loads(write_coco(tmp_path / "a.json", [rec], SHELF10).read_text())["annotations"][0]
    assert ann["bbox"] == [3, 5, 27, 15]
    assert ann["area"] == 15 * 27


def test_polygon_export_is_exact_for_rectangles_close_for_curves(tmp_path) -> None:
    insts = [
        Instance(1, rect(5, 20, 3, 30)),
        Instance(3, disc(40, 44, 10)),
        Instance(7, triangle()),
        Instance(4, rect(56, 62, 36, 60), iscrowd=True),
    ]
    path = write_coco(tmp_path / "p.json", [ImageRecord("a.png", H, W, insts)], SHELF10, encoding="polygon")
    coco = COCO(str(path))
    anns = coco.loadAnns(coco.getAnnIds())
    assert isinstance(anns[0]["segmentation"], list)
    assert isinstance(anns[3]["segmentation"], dict)  # crowds stay RLE
    masks = [coco.annToMask(a).astype(bool) for a in anns]
    assert np.array_equal(masks[0], insts[0].mask)
    assert np.array_equal(masks[3], insts[3].mask)
    assert iou(masks[1], insts[1].mask) > 0.9
    assert iou(masks[2], insts[2].mask) > 0.9


@pytest.mark.parametrize("encoding", ["rle", "polygon"])
def test_read_coco_round_trip(tmp_path, encoding: str) -> None:
    path = write_coco(tmp_path / "i.json", _records(), SHELF10, encoding=encoding)
    records, classes = read_coco(path)
    assert classes == SHELF10
    for got, want in zip(records, _records(), strict=True):
        assert (got.file_name, got.height, got.width) == (want.file_name, H, W)
        assert [i.class_id for i in got.instances] == [i.class_id for i in want.instances]
        assert [i.iscrowd for i in got.instances] == [i.iscrowd for i in want.instances]
        for g, w in zip(got.instances, want.instances, strict=True):
            assert iou(g.mask, w.mask) == 1.0 if encoding == "rle" else iou(g.mask, w.mask) > 0.9


def _uncompressed_rle(mask: np.ndarray) -> dict:
    flat = mask.flatten(order="F").astype(np.uint8)
    change = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    counts = np.diff(np.concatenate([[0], change])).tolist()
    return {"size": list(mask.shape), "counts": counts}


def _coco_json(tmp_path, segs: list, categories=None) -> str:
    cats = categories or [{"id": 3, "name": "bottle"}]
    anns = [
        {"id": i + 1, "image_id": 1, "category_id": cats[0]["id"], "segmentation": s, "iscrowd": 0}
        for i, s in enumerate(segs)
    ]
    data = {
        "images": [{"id": 1, "file_name": "x.jpg", "height": H, "width": W}],
        "annotations": anns,
        "categories": cats,
    }
    path = tmp_path / "c.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_reads_hand_written_polygon_and_uncompressed_rle(tmp_path) -> None:
    m = disc(30, 30, 9)
    poly = [[10, 10, 20, 10, 20, 30, 10, 30]]  # corners of pixels x 10..19, y 10..29
    records, classes = read_coco(_coco_json(tmp_path, [poly, _uncompressed_rle(m)]))
    assert classes.names == ("background", "bottle")
    a, b = records[0].instances
    assert a.class_id == b.class_id == 1
    assert np.array_equal(a.mask, rect(10, 30, 10, 20))
    assert np.array_equal(b.mask, m)


def test_foreign_categories_become_background_plus_sorted_ids(tmp_path) -> None:
    cats = [{"id": 7, "name": "cereal"}, {"id": 2, "name": "milk"}]
    records, classes = read_coco(_coco_json(tmp_path, [[[1, 1, 9, 1, 9, 9]]], cats))
    assert classes.names == ("background", "milk", "cereal")
    assert records[0].instances[0].class_id == 2  # category 7 'cereal' -> index 2


def test_shelf10_names_with_other_ids_map_by_name(tmp_path) -> None:
    names = list(reversed(SHELF10.thing_names))
    cats = [{"id": k + 1, "name": n} for k, n in enumerate(names)]
    records, classes = read_coco(_coco_json(tmp_path, [[[1, 1, 9, 1, 9, 9]]], cats))
    assert classes == SHELF10
    assert records[0].instances[0].class_id == SHELF10.names.index(names[0])


def test_some_shelf10_names_stay_the_users_classes(tmp_path) -> None:
    cats = [{"id": 1, "name": "gap"}, {"id": 2, "name": "can"}]
    records, classes = read_coco(_coco_json(tmp_path, [[[1, 1, 9, 1, 9, 9]]], cats))
    assert classes.names == ("background", "gap", "can")
    assert records[0].instances[0].class_id == 1


def test_bad_json_names_the_file(tmp_path) -> None:
    p = tmp_path / "broken.json"
    p.write_text("{not json")
    with pytest.raises(BadInput, match="broken.json: not valid JSON"):
        read_coco(p)


@pytest.mark.parametrize("key", ["images", "annotations", "categories"])
def test_missing_top_level_key_is_named(tmp_path, key: str) -> None:
    data = {"images": [], "annotations": [], "categories": []}
    del data[key]
    p = tmp_path / "k.json"
    p.write_text(json.dumps(data))
    with pytest.raises(BadInput, match=f"k.json: missing or invalid key '{key}'"):
        read_coco(p)


def test_annotation_without_segmentation_is_named(tmp_path) -> None:
    p = _coco_json(tmp_path, [[[1, 1, 9, 1, 9, 9]]])
    data = json.loads(open(p).read())
    del data["annotations"][0]["segmentation"]
    open(p, "w").write(json.dumps(data))
    with pytest.raises(BadInput, match=r"c.json: annotation id 1: missing key 'segmentation'"):
        read_coco(p)


def test_annotation_of_unknown_image_is_named(tmp_path) -> None:
    p = _coco_json(tmp_path, [[[1, 1, 9, 1, 9, 9]]])
    data = json.loads(open(p).read())
    data["annotations"][0]["image_id"] = 42
    open(p, "w").write(json.dumps(data))
    with pytest.raises(BadInput, match="image_id 42"):
        read_coco(p)


def test_missing_file(tmp_path) -> None:
    with pytest.raises(BadInput, match="nope.json: COCO file not found"):
        read_coco(tmp_path / "nope.json")


def test_unknown_encoding(tmp_path) -> None:
    with pytest.raises(BadInput, match="rle, polygon"):
        write_coco(tmp_path / "x.json", _records(), SHELF10, encoding="bitmap")


@settings(max_examples=25, deadline=None)
@given(arrays(np.bool_, (9, 13)), st.integers(1, 9), st.booleans())
def test_rle_round_trip_is_exact(tmp_path_factory, mask: np.ndarray, cid: int, crowd: bool) -> None:
    path = tmp_path_factory.mktemp("rle") / "i.json"
    write_coco(path, [ImageRecord("a.png", 9, 13, [Instance(cid, mask, iscrowd=crowd)])], SHELF10)
    (rec,), _ = read_coco(path)
    if not mask.any():
        assert rec.instances == []  # empty instances are not written
        return
    (inst,) = rec.instances
    assert (inst.class_id, inst.iscrowd) == (cid, crowd)
    assert np.array_equal(inst.mask, mask)


def test_box_only_and_degenerate_polygons_are_skipped_with_a_count(tmp_path, caplog) -> None:
    segs = [[], [], [[1, 1, 9, 1, 9, 9], [3, 3, 5, 5]], [[2, 2, 4, 4]]]  # CVAT box-only, 2-point parts
    with caplog.at_level("WARNING"):
        records, _ = read_coco(_coco_json(tmp_path, segs))
    assert len(records[0].instances) == 1  # only the triangle has a mask
    assert records[0].instances[0].mask.sum() > 0
    messages = [r.getMessage() for r in caplog.records]
    box_only = 'skipped 2 box-only annotations ("segmentation": [], no mask to import)'
    assert any(box_only in m for m in messages)
    assert any("skipped 2 polygon parts with fewer than 3 points" in m for m in messages)


def test_compressed_rle_string_is_checked_against_pycocotools(tmp_path) -> None:
    from pycocotools import mask as mask_utils

    from prodseg.data.formats.coco_validate import rle_string_counts

    m = np.asfortranarray(disc(30, 30, 9).astype(np.uint8))
    rle = mask_utils.encode(m)
    counts = rle_string_counts(rle["counts"].decode(), "x")
    assert sum(counts) == H * W
    back = mask_utils.frPyObjects({"size": [H, W], "counts": counts}, H, W)
    assert np.array_equal(mask_utils.decode(back), m)


def _valid_coco() -> dict:
    poly = {"id": 1, "image_id": 1, "category_id": 3, "iscrowd": 0, "segmentation": [[1, 1, 6, 1, 6, 6]]}
    rle = {
        "id": 2,
        "image_id": 1,
        "category_id": 3,
        "iscrowd": 1,
        "segmentation": {"size": [8, 8], "counts": [3, 5, 56]},
    }
    return {
        "images": [{"id": 1, "file_name": "a.png", "height": 8, "width": 8}],
        "annotations": [poly, rle],
        "categories": [{"id": 3, "name": "bottle"}],
    }


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 100) | st.floats(allow_nan=True) | st.text(max_size=6),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=12), kids, max_size=4),
    max_leaves=12,
)
_keys = st.sampled_from(
    [
        "images",
        "annotations",
        "categories",
        "id",
        "image_id",
        "category_id",
        "file_name",
        "height",
        "width",
        "segmentation",
        "size",
        "counts",
        "iscrowd",
        "score",
        "name",
    ]
)


def _mutate(data, path: list[int], key: str, value, delete: bool):
    """Set or delete `key` in the dict (or item of the list) reached by walking `path` into `data`."""
    node = data
    for step in path:
        children = list(node.values()) if isinstance(node, dict) else node if isinstance(node, list) else []
        if not children or not isinstance(children[step % len(children)], (dict, list)):
            break
        node = children[step % len(children)]
    if isinstance(node, dict):
        node.pop(key, None) if delete else node.__setitem__(key, value)
    elif isinstance(node, list) and node:
        node[path[-1] % len(node) if path else 0] = value
    return data


@settings(max_examples=80, deadline=None)
@given(
    st.one_of(
        _json,
        st.builds(
            _mutate,
            st.builds(_valid_coco),
            st.lists(st.integers(0, 5), max_size=5),
            _keys,
            _json,
            st.booleans(),
        ),
    )
)
def test_any_json_is_read_or_refused_as_bad_input(tmp_path_factory, data) -> None:
    path = tmp_path_factory.mktemp("h") / "c.json"
    path.write_text(json.dumps(data))
    try:
        records, _ = read_coco(path)
    except BadInput as exc:
        assert str(exc).startswith(str(path)) and "\n" not in str(exc)
        return
    for rec in records:
        assert all(i.mask.shape == (rec.height, rec.width) for i in rec.instances)
