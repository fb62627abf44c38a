"""Polygon tracing conventions, ultralytics-style segment merging and connected components."""

from __future__ import annotations

import numpy as np

from prodseg.data.formats.geometry import (
    centre_polygons,
    components,
    corner_polygons,
    fill_polygon,
    merge_segments,
)
from tests.data.formats_builders import H, W, rect


def test_corner_polygon_of_a_rectangle_traces_pixel_edges() -> None:
    (poly,) = corner_polygons(rect(5, 20, 3, 30))
    assert sorted(map(tuple, poly.astype(int).tolist())) == [(3, 5), (3, 20), (30, 5), (30, 20)]


def test_centre_polygon_of_a_rectangle_fills_back_exactly() -> None:
    m = rect(5, 20, 3, 30)
    (poly,) = centre_polygons(m)
    assert np.array_equal(fill_polygon(poly, (H, W)), m)


def test_polygons_come_largest_first() -> None:
    polys = centre_polygons(rect(0, 3, 0, 3) | rect(10, 30, 10, 30))
    assert polys[0].min(0).tolist() == [10, 10]


def test_merge_segments_keeps_every_point_of_every_part() -> None:
    a = np.array([[0, 0], [4, 0], [4, 4], [0, 4]], float)
    b = np.array([[10, 0], [14, 0], [14, 4], [10, 4]], float)
    c = np.array([[20, 0], [24, 0], [24, 4], [20, 4]], float)
    merged = merge_segments([a, b, c])
    for part in (a, b, c):
        assert {tuple(p) for p in part.tolist()} <= {tuple(p) for p in merged.tolist()}
    assert merge_segments([a]) is a


def test_components_split_classes_and_keep_ignore_as_crowd() -> None:
    mask = np.zeros((H, W), np.uint8)
    mask[0:10, 0:10] = 3
    mask[20:30, 20:30] = 3
    mask[40:50, 0:10] = 5
    mask[40:50, 10:12] = 255  # ignore touching the class-5 box
    insts = components(mask, 10)
    assert [(i.class_id, i.iscrowd, int(i.mask.sum())) for i in insts] == [
        (3, False, 100),
        (3, False, 100),
        (5, False, 100),
        (5, True, 20),
    ]
