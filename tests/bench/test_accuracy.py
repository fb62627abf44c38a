import numpy as np
import pytest

from prodseg.bench.accuracy import GroundTruth, VideoAccuracy
from prodseg.data.imageio import write_mask
from prodseg.errors import BadInput


def test_miou_and_per_class_iou_exact_through_the_metrics_core():
    gt = np.array([[0, 0, 1, 1], [2, 2, 255, 1]], np.uint8)
    pred = np.array([[0, 1, 1, 1], [2, 0, 2, 1]], np.uint8)
    acc = VideoAccuracy(4)
    acc.update(0, gt, pred)
    res = acc.result()
    assert acc.cm.mat[:3, :3].tolist() == [[1, 1, 0], [0, 3, 0], [1, 0, 1]]
    # IoU: class0 1/(2+2-1)=1/3, class1 3/(3+4-3)=3/4, class2 1/(2+1-1)=1/2, class 3 absent
    assert res.iou[:3] == pytest.approx([1 / 3, 3 / 4, 1 / 2]) and np.isnan(res.iou[3])
    assert res.miou == pytest.approx((1 / 3 + 3 / 4 + 1 / 2) / 3)
    assert res.as_dict()["iou"] == [0.333333, 0.75, 0.5, None]


def test_truth_labels_outside_the_models_classes_are_bad_input():
    with pytest.raises(BadInput, match=r"frame 7: ground truth holds label\(s\) 5 outside the 3 classes"):
        VideoAccuracy(3).update(7, np.array([[0, 5]], np.uint8), np.array([[0, 1]], np.uint8))


def test_flicker_is_prediction_changes_beyond_truth_changes():
    acc = VideoAccuracy(2)
    gt0 = np.zeros((2, 5), np.uint8)
    gt1 = gt0.copy()
    gt1[0, 0] = 1  # truth changes 1 of 10 pixels
    pred0 = gt0.copy()
    pred1 = gt1.copy()
    pred1[1, :3] = 1  # prediction changes 4 of 10 pixels
    acc.update(0, gt0, pred0)
    acc.update(1, gt1, pred1)
    res = acc.result()
    assert res.frames == 2
    assert res.pred_change_rate == pytest.approx(0.4)
    assert res.gt_change_rate == pytest.approx(0.1)
    assert res.flicker == pytest.approx(0.3)
    # 20 pixels: class0 tp=16, class1 tp=1; pred1 has 3 false class-1 pixels.
    assert res.miou == pytest.approx((16 / 19 + 1 / 4) / 2)


def test_flicker_clamped_at_zero_and_skips_ignore_and_non_consecutive_frames():
    acc = VideoAccuracy(2)
    a = np.array([[0, 1, 255]], np.uint8)
    b = np.array([[1, 1, 255]], np.uint8)
    acc.update(5, a, a)
    acc.update(6, b, np.array([[1, 1, 0]], np.uint8))  # the ignore pixel changes but is left out
    acc.update(0, a, b)  # a looped video restarts: no pair with frame 6
    res = acc.result()
    assert res.pred_change_rate == pytest.approx(0.5)
    assert res.gt_change_rate == pytest.approx(0.5)
    assert res.flicker == 0.0
    assert res.as_dict()["flicker"] == 0.0


def test_prediction_resized_to_truth():
    acc = VideoAccuracy(2)
    gt = np.zeros((4, 4), np.uint8)
    gt[:, 2:] = 1
    pred = np.array([[0, 1], [0, 1]], np.uint8)
    acc.update(0, gt, pred)
    assert acc.result().miou == 1.0


def test_ground_truth_folder(tmp_path):
    write_mask(tmp_path / "000003.png", np.full((2, 3), 4, np.uint8))
    (tmp_path / "notes.png").write_bytes(b"x")
    gt = GroundTruth(tmp_path)
    assert gt.get(3).tolist() == [[4, 4, 4], [4, 4, 4]]
    assert gt.get(0) is None
    with pytest.raises(BadInput, match="no masks"):
        GroundTruth(tmp_path / "empty" if (tmp_path / "empty").mkdir() is None else tmp_path)
    with pytest.raises(BadInput, match="not a folder"):
        GroundTruth(tmp_path / "missing")
