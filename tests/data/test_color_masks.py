"""Colour-coded masks: exact, vectorised lookup both ways; unknown colours are named with a position."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from prodseg.data.formats.color_masks import IGNORE_COLOR, decode_color, encode_color
from prodseg.data.taxonomy import SHELF10, ClassList
from prodseg.errors import BadInput


def test_encode_uses_class_colours_and_white_for_ignore() -> None:
    mask = np.array([[0, 1], [9, 255]], np.uint8)
    rgb = encode_color(mask, SHELF10)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 2, 3)
    assert rgb[0, 0].tolist() == [0, 0, 0]
    assert rgb[0, 1].tolist() == list(SHELF10.colors[1])
    assert rgb[1, 0].tolist() == list(SHELF10.colors[9])
    assert rgb[1, 1].tolist() == list(IGNORE_COLOR)


@settings(max_examples=30, deadline=None)
@given(arrays(np.uint8, (7, 11), elements=st.sampled_from([*range(10), 255])))
def test_round_trip_is_exact(mask: np.ndarray) -> None:
    assert np.array_equal(decode_color(encode_color(mask, SHELF10), SHELF10), mask)


def test_unknown_colour_names_file_colour_and_position() -> None:
    rgb = encode_color(np.zeros((4, 5), np.uint8), SHELF10)
    rgb[2, 3] = (1, 2, 3)
    rgb[3, 4] = (1, 2, 3)
    with pytest.raises(BadInput, match=r"masks/a.png: colour \(1, 2, 3\) at \(x=3, y=2\).*2 such pixels"):
        decode_color(rgb, SHELF10, "masks/a.png")


def test_label_outside_the_classes_cannot_be_encoded() -> None:
    with pytest.raises(BadInput, match=r"label 12 at \(x=1, y=0\)"):
        encode_color(np.array([[0, 12]], np.uint8), SHELF10)


def test_white_class_colour_clashes_with_ignore() -> None:
    classes = ClassList(("background", "snow"), ((0, 0, 0), IGNORE_COLOR))
    with pytest.raises(BadInput, match="'snow' uses"):
        encode_color(np.zeros((2, 2), np.uint8), classes)


def test_grey_or_rgba_arrays_are_refused() -> None:
    with pytest.raises(BadInput, match="RGB"):
        decode_color(np.zeros((3, 3), np.uint8), SHELF10, "m.png")
