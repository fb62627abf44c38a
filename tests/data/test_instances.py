"""Instance <-> semantic/id map conversions (exact values on tiny arrays)."""

from __future__ import annotations

import numpy as np

from prodseg.data.instances import (
    ImageRecord,
    Instance,
    id_map_from_instances,
    instances_from_id_map,
    semantic_from_instances,
)


def _m(*cells: tuple[int, int]) -> np.ndarray:
    m = np.zeros((3, 4), bool)
    for y, x in cells:
        m[y, x] = True
    return m


def test_semantic_paints_later_instances_on_top_and_crowds_as_ignore() -> None:
    insts = [
        Instance(3, _m((0, 0), (0, 1))),
        Instance(5, _m((0, 1), (1, 1))),
        Instance(2, _m((2, 3)), iscrowd=True),
    ]
    assert semantic_from_instances(insts, (3, 4)).tolist() == [[3, 5, 0, 0], [0, 5, 0, 0], [0, 0, 0, 255]]
    assert semantic_from_instances(insts, (3, 4), ignore_crowd=False)[2, 3] == 0


def test_id_map_skips_crowds() -> None:
    insts = [Instance(3, _m((0, 0))), Instance(4, _m((1, 1)), iscrowd=True), Instance(4, _m((0, 0), (2, 2)))]
    assert id_map_from_instances(insts, (3, 4)).tolist() == [[3, 0, 0, 0], [0, 0, 0, 0], [0, 0, 3, 0]]


def test_instances_from_id_map_take_the_majority_label() -> None:
    semantic = np.array([[3, 3, 4, 0], [255, 3, 4, 0], [0, 0, 0, 0]], np.uint8)
    ids = np.array([[1, 1, 2, 7], [1, 1, 2, 7], [0, 0, 0, 0]], np.int32)
    out = instances_from_id_map(semantic, ids)
    assert [(i.class_id, int(i.mask.sum())) for i in out] == [(3, 4), (4, 2)]  # id 7 only covers background


def test_record_stem() -> None:
    assert ImageRecord("shelf.001.jpg", 4, 4).stem == "shelf.001"
    assert ImageRecord("a.png", 4, 4).instances == []
