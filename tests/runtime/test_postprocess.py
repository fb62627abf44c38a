"""YOLOv8-seg and semantic post-processing: exact maths on fixed inputs, agreement with ultralytics/torch."""

from __future__ import annotations

import numpy as np
import pytest

from prodseg.runtime.postprocess import argmax_channels, nms, to_frame
from prodseg.runtime.preprocess import geometry


def test_argmax_channels_matches_numpy_first_max() -> None:
    rng = np.random.default_rng(0)
    logits = rng.integers(0, 4, (6, 9, 7)).astype(np.float32)  # many ties: first index must win
    assert np.array_equal(argmax_channels(logits), logits.argmax(0).astype(np.uint8))


def test_nms_is_class_aware() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    classes = np.array([0, 0, 1, 0])
    assert nms(boxes, scores, classes, 0.5).tolist() == [0, 2, 3]


def test_to_frame_cuts_letterbox_padding() -> None:
    ctx = geometry((50, 100), (64, 64), "letterbox")  # content 32x64 centred: pad 16 on top
    assert (ctx.content, ctx.pad) == ((32, 64), (16, 0))
    label = np.zeros((64, 64), np.uint8)
    label[16:32] = 3  # upper half of the content
    out = to_frame(label, ctx)
    assert out.shape == (50, 100)
    assert (out[:25] == 3).all() and (out[25:] == 0).all()


@pytest.mark.slow
def test_yolo_seg_agrees_with_ultralytics(yolo, shelf_frame) -> None:
    pytest.importorskip("ultralytics", reason="the reference is ultralytics (a training extra)")
    import torch
    from ultralytics.data.augment import LetterBox
    from ultralytics.utils import ops
    from ultralytics.utils.nms import non_max_suppression

    import prodseg.runtime as rt

    path, model = yolo
    # ONNX Runtime: the artifact's own f32 arithmetic (auto may pick OpenVINO's bf16 on this CPU)
    pred = rt.load(path, backend="onnxruntime", fuse_preprocess=False)
    feed, ctx = pred.preprocess(shelf_frame)
    boxed = LetterBox(pred.input_size, auto=False)(image=shelf_frame)
    ref_in = torch.from_numpy(boxed).permute(2, 0, 1)[None]
    assert np.array_equal(feed["images"], (ref_in.float() / 255).numpy())
    # the model normalises itself: Python hands it the letterboxed BGR pixels
    fused = rt.load(path, backend="onnxruntime")
    assert fused.fused and np.array_equal(fused.preprocess(shelf_frame)[0]["images"][0], boxed[..., ::-1])
    with torch.no_grad():
        p0, protos = model(ref_in.float() / 255)
    det = non_max_suppression(p0, pred.meta.confidence_threshold, pred.meta.iou_threshold, nc=9)[0]
    boxes = ops.scale_boxes(pred.input_size, det[:, :4].clone(), shelf_frame.shape)
    masks = ops.process_mask_native(protos[0], det[:, 6:], boxes, shelf_frame.shape[:2]).bool().numpy()
    mine = pred.postprocess(pred.infer(feed), ctx)
    assert len(det) >= 3 and len({int(c) for c in det[:, 5]}) >= 2  # a comparison, not a vacuous one
    assert len(mine.instances) == len(det)
    assert [d.class_id for d in mine.instances] == (det[:, 5].int() + 1).tolist()
    np.testing.assert_allclose([d.score for d in mine.instances], det[:, 4].numpy(), atol=1e-3)
    np.testing.assert_allclose(np.stack([d.box for d in mine.instances]), boxes.numpy(), atol=0.05)
    for d, m in zip(mine.instances, masks, strict=True):
        assert (d.mask & m).sum() / (d.mask | m).sum() > 0.95
    painted = np.zeros(shelf_frame.shape[:2], np.uint8)
    for c, m in zip(det[:, 5].int().tolist()[::-1], masks[::-1], strict=True):
        painted[m] = c + 1  # ascending confidence
    assert (painted == mine.label_map).mean() > 0.97
    pred.close()


@pytest.mark.slow
def test_semantic_agrees_with_torch(deeplab, shelf_frame) -> None:
    import cv2

    torch = pytest.importorskip("torch", reason="the reference is the torch model (a training extra)")

    import prodseg.runtime as rt

    path, model = deeplab
    pred = rt.load(path, backend="onnxruntime")  # the artifact's f32 arithmetic, like the torch reference
    out = pred.predict(shelf_frame)
    x = cv2.resize(shelf_frame, (96, 64), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255
    x = (x - np.array(pred.meta.mean, np.float32)) / np.array(pred.meta.std, np.float32)
    with torch.no_grad():
        logits = model(torch.from_numpy(x.transpose(2, 0, 1)[None].copy())).numpy()[0]
    ref = cv2.resize(logits.argmax(0).astype(np.uint8), (160, 96), interpolation=cv2.INTER_NEAREST)
    assert out.label_map.shape == (96, 160) and out.label_map.dtype == np.uint8
    assert (out.label_map == ref).mean() > 0.995
    assert set(out.timings) == {"preprocess", "infer", "postprocess"}
    pred.close()


def _yolo_case(frame_hw: tuple[int, int], boxes: int = 12):
    """Synthetic YOLOv8-seg outputs at 128² (nc 3) with smooth prototypes, the metadata and the context."""
    import cv2

    from prodseg.metadata import ArtifactMetadata

    rng = np.random.default_rng(1)
    pred = np.zeros((1, 4 + 3 + 32, 336), np.float32)
    idx = rng.choice(336, boxes, replace=False)
    pred[0, 0, idx], pred[0, 1, idx] = rng.uniform(20, 108, boxes), rng.uniform(30, 98, boxes)
    pred[0, 2, idx], pred[0, 3, idx] = rng.uniform(10, 40, boxes), rng.uniform(10, 40, boxes)
    pred[0, 4 + rng.integers(0, 3, boxes), idx] = rng.uniform(0.5, 0.95, boxes)
    pred[0][7:, idx] = rng.normal(0, 1, (32, boxes))
    protos = np.stack([cv2.GaussianBlur(p, (0, 0), 2) * 10 for p in rng.normal(0, 1, (32, 32, 32))])
    meta = ArtifactMetadata(
        arch="yolov8_seg",
        class_names=["background", "a", "b", "c"],
        class_colors=[[0, 0, 0]] * 4,
        input_size=[128, 128],
        mean=[0, 0, 0],
        std=[1, 1, 1],
        output_kind="yolo_seg",
        resize="letterbox",
    )
    outputs = {"output0": pred, "output1": protos[None].astype(np.float32)}
    return outputs, meta, geometry(frame_hw, (128, 128), "letterbox")


def _painted(instances, frame_hw) -> np.ndarray:
    label = np.zeros(frame_hw, np.uint8)
    for det in reversed(instances):
        label[det.mask] = det.class_id
    return label


def test_yolo_seg_map_is_the_exact_masks_painted_for_frames_up_to_the_input() -> None:
    from prodseg.runtime.postprocess import yolo_seg

    outputs, meta, ctx = _yolo_case((64, 96))  # smaller than the 128² input
    pred = yolo_seg(outputs, ctx, meta)
    assert len(pred.instances) >= 5
    det = pred.instances[0]  # the full mask is made when first read
    assert det._window_fn is not None
    assert np.array_equal(pred.label_map, _painted(pred.instances, (64, 96)))
    window, mask = det.window, det.window_mask
    assert det._window_fn is None and mask.dtype == bool
    assert mask.shape == (window[3] - window[1], window[2] - window[0])


def test_yolo_seg_large_frames_paint_on_the_input_grid() -> None:
    from prodseg.runtime.postprocess import MaskGrid, yolo_seg

    outputs, meta, ctx = _yolo_case((384, 640))  # 5x the 128 input per axis: the grid is 77x128
    assert MaskGrid(ctx, outputs["output1"][0]).size == (77, 128)
    pred = yolo_seg(outputs, ctx, meta)
    exact = _painted(pred.instances, (384, 640))
    assert pred.label_map.shape == (384, 640)
    assert (pred.label_map == exact).mean() > 0.97  # smooth masks differ only along their edges


def test_matrix_nms_equals_the_loop() -> None:
    from prodseg.runtime.postprocess import MAX_WH, _nms_loop

    rng = np.random.default_rng(0)
    xy, wh = rng.uniform(0, 600, (400, 2)), rng.uniform(5, 120, (400, 2))
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    scores, classes = rng.random(400).astype(np.float32), rng.integers(0, 3, 400)
    off = boxes + (classes.astype(np.float32) * MAX_WH)[:, None]
    for max_det in (300, 20):
        ref = _nms_loop(off, np.argsort(-scores, kind="stable"), 0.45, max_det)
        assert np.array_equal(nms(boxes, scores, classes, 0.45, max_det), ref)
