"""Model and data classes are matched by name: identical, reordered (remapped), mapped, or refused."""

from __future__ import annotations

import numpy as np
import pytest

from prodseg.classes import match_classes, read_class_map
from prodseg.errors import BadInput
from prodseg.metrics import ConfusionMatrix

DATA = ["background", "product", "price_label", "empty_space"]


def test_identical_lists_need_nothing() -> None:
    match = match_classes(DATA, list(DATA))
    assert match.lut is None and match.note == ""
    labels = np.array([[0, 3]], np.uint8)
    assert match.apply(labels) is labels


def test_a_reordered_list_is_remapped_by_name_and_scores_the_same() -> None:
    model = ["background", "empty_space", "product", "price_label"]
    match = match_classes(model, DATA, "model.onnx", "data/classes.yaml")
    assert match.lut is not None and match.lut[:4].tolist() == [0, 3, 1, 2]
    assert match.note == (
        "model.onnx's classes are matched to data/classes.yaml's by name (same names, another order)"
    )
    truth = np.array([[0, 1, 2, 3]], np.uint8)  # in the data's order
    in_model_order = np.array([[0, 2, 3, 1]], np.uint8)  # the same pixels in the model's numbering
    cm = ConfusionMatrix(4)
    cm.update(truth, match.apply(in_model_order))
    assert cm.scores().miou == 1.0


def test_different_names_are_refused_listing_both() -> None:
    with pytest.raises(BadInput) as err:
        match_classes(["background", "bottle"], DATA, "model.onnx", "classes.yaml")
    assert str(err.value) == (
        "model.onnx and classes.yaml have different classes: model [background, bottle] (2), "
        "data [background, product, price_label, empty_space] (4); not in the data: bottle; "
        "a --class-map FILE (YAML: model class -> data class) maps them"
    )


def test_a_class_map_merges_model_classes_into_data_classes(tmp_path) -> None:
    path = tmp_path / "map.yaml"
    path.write_text("bottle: product\ncan: product\ntag: price_label\n")
    model = ["background", "bottle", "can", "tag", "empty_space"]
    match = match_classes(model, DATA, class_map=read_class_map(path))
    assert match.lut is not None and match.lut[:5].tolist() == [0, 1, 1, 2, 3]
    assert match.lut[5] == 255  # a label the model cannot produce stays out of range
    with pytest.raises(BadInput, match="not in the data: shelf; fix the --class-map"):
        match_classes(model + ["shelf"], DATA, class_map=read_class_map(path))


@pytest.mark.parametrize("text", ["- a\n- b\n", "{}\n", "a: [1, 2]\n"])
def test_a_class_map_that_is_not_a_name_mapping_is_bad_input(tmp_path, text) -> None:
    path = tmp_path / "map.yaml"
    path.write_text(text)
    with pytest.raises(BadInput, match="map.yaml: a class map is a YAML mapping"):
        read_class_map(path)
