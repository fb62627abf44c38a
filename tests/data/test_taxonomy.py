"""Class lists: validation, classes.yaml round trip, default colours."""

from __future__ import annotations

import pytest

from prodseg.data.taxonomy import SHELF10, ClassList, default_colors
from prodseg.errors import BadInput


def test_shelf10() -> None:
    assert SHELF10.num_classes == 10
    assert SHELF10.names[0] == "background" and SHELF10.thing_names[-1] == "signage"
    assert len(set(SHELF10.colors)) == 10


@pytest.mark.parametrize(
    "names, colors, message",
    [
        (("a", "b"), ((0, 0, 0),), "2 names but 1 colours"),
        (("a", "a"), ((0, 0, 0), (1, 1, 1)), "duplicate class names"),
        ((), (), "0 classes"),
    ],
)
def test_invalid_lists(names, colors, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        ClassList(names, colors)


def test_yaml_round_trip_and_default_colours(tmp_path) -> None:
    assert ClassList.load(SHELF10.save(tmp_path / "classes.yaml")) == SHELF10
    names = "background, milk, eggs, bread, cheese, jam, tea, oil, rice, salt, soap"
    (tmp_path / "c.yaml").write_text(f"names: [{names}]\n")
    c = ClassList.load(tmp_path / "c.yaml")
    assert c.colors[:10] == SHELF10.colors and len(set(c.colors)) == 11


def test_bad_yaml_files(tmp_path) -> None:
    with pytest.raises(BadInput, match="classes.yaml is missing"):
        ClassList.load(tmp_path / "classes.yaml")
    (tmp_path / "x.yaml").write_text("names: [a\n")
    with pytest.raises(BadInput, match="x.yaml: classes.yaml is not valid YAML at line 2"):
        ClassList.load(tmp_path / "x.yaml")
    (tmp_path / "y.yaml").write_text("colors: [[0, 0, 0]]\n")
    with pytest.raises(BadInput, match="y.yaml: expected 'names: \\[...\\]'"):
        ClassList.load(tmp_path / "y.yaml")


def test_default_colors_are_deterministic_and_distinct() -> None:
    assert default_colors(40) == default_colors(40)
    assert len(set(default_colors(40))) == 40
    assert all(0 <= v <= 255 for c in default_colors(40) for v in c)
