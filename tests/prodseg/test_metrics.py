"""The metrics core: exact values on fixed label maps, conventions for ignore/absent/out-of-range labels."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import confusion_matrix as sk_confusion
from sklearn.metrics import jaccard_score

from prodseg.metrics import ConfusionMatrix, LabelOutOfRange, confusion_matrix, scores

PRED = np.array([[0, 1], [1, 1]], np.uint8)
GT = np.array([[0, 1], [0, 255]], np.uint8)


def test_rows_are_ground_truth_and_ignored_truth_is_skipped() -> None:
    assert confusion_matrix(GT, PRED, 3).tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 0]]


def test_scores_exact_and_an_absent_class_is_nan_and_left_out() -> None:
    s = scores(confusion_matrix(GT, PRED, 3))
    # class 0: tp 1, gt 2, pred 1 -> IoU 1/2, Dice 2/3; class 1: tp 1, gt 1, pred 2 -> the same.
    assert s.iou[:2] == [0.5, 0.5] and s.dice[:2] == pytest.approx([2 / 3, 2 / 3])
    assert math.isnan(s.iou[2]) and math.isnan(s.dice[2])
    assert (s.miou, s.pixel_accuracy) == (0.5, pytest.approx(2 / 3)) and s.mean_dice == pytest.approx(2 / 3)


def test_a_class_only_predicted_counts_as_zero() -> None:
    s = scores(confusion_matrix(np.array([1, 1]), np.array([2, 1]), 3))
    assert s.iou[1:] == [0.5, 0.0] and math.isnan(s.iou[0]) and s.miou == 0.25


def test_a_predicted_255_is_not_ignore_but_an_error_showing_the_label() -> None:
    with pytest.raises(LabelOutOfRange, match=r"x.png: prediction holds label\(s\) 255 outside the 3"):
        confusion_matrix(np.array([0, 1]), np.array([0, 255]), 3, where="x.png")


def test_truth_labels_beyond_the_classes_are_an_error_naming_them() -> None:
    with pytest.raises(LabelOutOfRange, match=r"ground truth holds label\(s\) 3, 7 outside .*0..2 or 255"):
        confusion_matrix(np.array([0, 3, 7, 255]), np.array([0, 0, 0, 0]), 3)


def test_accumulation_and_the_empty_matrix() -> None:
    cm = ConfusionMatrix(4)
    assert math.isnan(cm.scores().miou) and math.isnan(cm.scores().pixel_accuracy)
    truth = np.array([[0, 1, 2, 3], [3, 3, 255, 0]])
    cm.update(truth, np.minimum(truth, 3))
    cm.update(np.array([1]), np.array([1]))
    s = cm.scores()
    assert (s.miou, s.mean_dice, s.pixel_accuracy, int(cm.mat.sum())) == (1.0, 1.0, 1.0, 8)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from([0, 1, 2, 3, 255])), min_size=1, max_size=40))
def test_equals_scikit_learn(pairs: list[tuple[int, int]]) -> None:
    pred = np.array([p for p, _ in pairs])
    truth = np.array([t for _, t in pairs])
    mat = confusion_matrix(truth, pred, 4)
    keep = truth != 255
    if not keep.any():
        assert not mat.any() and math.isnan(scores(mat).miou)
        return
    labels = [0, 1, 2, 3]
    assert mat.tolist() == sk_confusion(truth[keep], pred[keep], labels=labels).tolist()
    present = [c for c in labels if c in truth[keep] or c in pred[keep]]
    reference = jaccard_score(truth[keep], pred[keep], labels=present, average=None)
    s = scores(mat)
    assert [s.iou[c] for c in present] == pytest.approx(list(reference))
    assert all(math.isnan(s.iou[c]) for c in labels if c not in present)
    assert s.miou == pytest.approx(float(np.mean(reference)))
