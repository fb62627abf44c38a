"""Model outputs -> Prediction at the frame's resolution: semantic argmax, or YOLOv8-seg instances + map.

Semantic: argmax at the model's output resolution, then the content region (letterbox padding cut off)
is resized nearest-neighbour to the frame; the torch runner returns the same logits, so both agree.
YOLOv8-seg: ultralytics' `non_max_suppression` + `process_mask_native` semantics, computed per instance on
its box only: mask logits = coeffs @ protos over the box's prototype window, sampled bilinearly straight at
frame pixels (one warpAffine), > 0 (= sigmoid > 0.5), cropped to the box; instances with empty masks dropped.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import cv2
import numpy as np

from prodseg.errors import BadInput
from prodseg.metadata import ArtifactMetadata
from prodseg.metrics import MAX_DET
from prodseg.runtime.facts import classify_outputs
from prodseg.runtime.types import Detection, FrameContext, Prediction

MAX_NMS = 30000  # ultralytics' caps
MAX_WH = 7680


def argmax_channels(logits: np.ndarray) -> np.ndarray:
    """(C, H, W) -> uint8 (H, W) index of the first maximum, streaming over channels (cache friendly)."""
    best = logits[0].copy()
    index = np.zeros(best.shape, np.uint8)
    for c in range(1, logits.shape[0]):
        better = logits[c] > best
        index[better] = c
        np.maximum(best, logits[c], out=best)
    return index


def to_frame(label: np.ndarray, ctx: FrameContext) -> np.ndarray:
    """A map at model-output resolution -> the frame's resolution (cut padding, nearest resize)."""
    oh, ow = label.shape
    ih, iw = ctx.input_size
    fy, fx = oh / ih, ow / iw
    top, left = round(ctx.pad[0] * fy), round(ctx.pad[1] * fx)
    ch, cw = max(round(ctx.content[0] * fy), 1), max(round(ctx.content[1] * fx), 1)
    content = label[top : top + ch, left : left + cw]
    h, w = ctx.frame_size
    if content.shape == (h, w):
        return np.ascontiguousarray(content)
    return cv2.resize(content, (w, h), interpolation=cv2.INTER_NEAREST)


def by_role(outputs: dict[str, np.ndarray], kind: str) -> dict[str, np.ndarray]:
    """The outputs by role ('logits'; 'pred', 'protos'), matched by shape whatever their names and order."""
    arrays = list(outputs.values())
    layout = classify_outputs([a.shape for a in arrays], "model")
    if layout.kind != kind:
        raise BadInput(f"model: its outputs are {layout.kind} but its metadata says {kind}; pass --task")
    return {role: arrays[i] for role, i in layout.roles.items()}


def semantic(
    outputs: dict[str, np.ndarray],
    ctx: FrameContext,
    meta: ArtifactMetadata,
    keep: frozenset[int] | None = None,
) -> Prediction:
    """Logits (1, C, h, w) -> label map at frame size; classes not in `keep` become background (0)."""
    label = argmax_channels(by_role(outputs, "semantic_logits")["logits"][0])
    if keep is not None:
        label[~np.isin(label, list(keep))] = 0
    return Prediction(label_map=to_frame(label, ctx))


def _split_yolo(outputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(detections (4+nc+nm, N), protos (nm, mh, mw)) from ultralytics' two outputs, whatever their names."""
    roles = by_role(outputs, "yolo_seg")
    return roles["pred"][0], roles["protos"][0]


MATRIX_NMS = 1024  # up to this many candidates, one IoU matrix: the greedy loop then only reads rows


def _iou_matrix(off: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = off.T
    areas = (x2 - x1) * (y2 - y1)
    w = np.clip(np.minimum(x2[:, None], x2[None]) - np.maximum(x1[:, None], x1[None]), 0, None)
    h = np.clip(np.minimum(y2[:, None], y2[None]) - np.maximum(y1[:, None], y1[None]), 0, None)
    inter = w * h
    return inter / np.maximum(areas[:, None] + areas[None] - inter, 1e-9)


def nms(
    boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float, max_det: int = MAX_DET
) -> np.ndarray:
    """Greedy class-aware NMS (ultralytics' class offset); stops at max_det.

    Indices by descending score. A box is suppressed when its IoU with a kept one exceeds `iou`, as in
    torchvision.ops.nms. Up to MATRIX_NMS candidates the IoUs come from one matrix; beyond, per kept box.
    (OpenCV's NMSBoxes took ~1 s on 5000 random-weight candidates here.)
    """
    off = boxes.astype(np.float32) + (classes.astype(np.float32) * MAX_WH)[:, None]
    order = np.argsort(-scores, kind="stable")
    if len(order) <= MATRIX_NMS:
        over = _iou_matrix(off[order]) > iou
        suppressed = np.zeros(len(order), bool)
        keep: list[int] = []
        for i in range(len(order)):
            if not suppressed[i]:
                keep.append(int(order[i]))
                if len(keep) == max_det:
                    break
                suppressed |= over[i]
        return np.asarray(keep, np.int64)
    return _nms_loop(off, order, iou, max_det)


def _nms_loop(off: np.ndarray, order: np.ndarray, iou: float, max_det: int) -> np.ndarray:
    x1, y1, x2, y2 = off.T
    areas = (x2 - x1) * (y2 - y1)
    keep: list[int] = []
    while order.size and len(keep) < max_det:
        i, rest = order[0], order[1:]
        keep.append(int(i))
        w = np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest])
        h = np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest])
        inter = np.clip(w, 0, None) * np.clip(h, 0, None)
        order = rest[inter <= iou * (areas[i] + areas[rest] - inter)]  # IoU <= iou, without a division
    return np.asarray(keep, np.int64)


def candidates(pred: np.ndarray, nc: int, conf: float) -> tuple[np.ndarray, ...]:
    """Confidence filter: (boxes xyxy input px, scores, classes, mask coefficients), by descending score."""
    cls_scores = pred[4 : 4 + nc]
    classes = cls_scores.argmax(0)
    scores = np.take_along_axis(cls_scores, classes[None], 0)[0]
    idx = np.flatnonzero(scores > conf)
    idx = idx[np.argsort(-scores[idx], kind="stable")][:MAX_NMS]
    xywh = pred[:4, idx].T
    boxes = np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], 1)
    return boxes, scores[idx], classes[idx], pred[4 + nc :, idx].T


def boxes_to_frame(boxes: np.ndarray, ctx: FrameContext) -> np.ndarray:
    """Input-pixel xyxy -> frame-pixel xyxy, clipped (ultralytics' scale_boxes)."""
    (sy, sx), (top, left) = ctx.scale, ctx.pad
    out = (boxes - np.array([left, top, left, top], np.float32)) / np.array([sx, sy, sx, sy], np.float32)
    h, w = ctx.frame_size
    np.clip(out[:, 0::2], 0, w, out=out[:, 0::2])
    np.clip(out[:, 1::2], 0, h, out=out[:, 1::2])
    return out


def _proto_map(ctx: FrameContext, proto_hw: tuple[int, int]) -> tuple[float, float, float, float]:
    """(ax, bx, ay, by): frame pixel x -> prototype coordinate x*ax + bx (frame->input, input->proto)."""
    (mh, mw), (ih, iw) = proto_hw, ctx.input_size
    h, w = ctx.frame_size
    ax, ay = ctx.content[1] / w * mw / iw, ctx.content[0] / h * mh / ih
    bx = (0.5 * ctx.content[1] / w + ctx.pad[1]) * mw / iw - 0.5
    by = (0.5 * ctx.content[0] / h + ctx.pad[0]) * mh / ih - 0.5
    return ax, bx, ay, by


def _sample(coeffs: np.ndarray, protos: np.ndarray, m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Mask logits at `size` (w, h) samples; m maps sample (col, row) -> prototype (x, y). Only the
    prototype window under the samples (+1 for bilinear) is multiplied: cost follows the instance's area."""
    mh, mw = protos.shape[1:]
    sw, sh = size
    px0, py0 = max(math.floor(m[0, 2]) - 1, 0), max(math.floor(m[1, 2]) - 1, 0)
    px1 = min(math.ceil(m[0, 0] * (sw - 1) + m[0, 2]) + 2, mw)
    py1 = min(math.ceil(m[1, 1] * (sh - 1) + m[1, 2]) + 2, mh)
    window = protos[:, py0:py1, px0:px1]
    plane = (coeffs @ window.reshape(len(coeffs), -1)).reshape(window.shape[1:])
    plane = plane.astype(np.float32, copy=False)
    m = m.copy()
    m[0, 2] -= px0
    m[1, 2] -= py0
    return cv2.warpAffine(
        plane, m, (sw, sh), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
    )


def _crop(mask: np.ndarray, lo: tuple[float, float], hi: tuple[float, float]) -> np.ndarray:
    """Clear the mask outside [lo, hi) (x, y), given in the mask's own pixel indices (may be fractional)."""
    c0, c1 = math.ceil(lo[0]), math.ceil(hi[0])
    r0, r1 = math.ceil(lo[1]), math.ceil(hi[1])
    mask[:, : max(c0, 0)] = False
    mask[:, max(c1, 0) :] = False
    mask[: max(r0, 0)] = False
    mask[max(r1, 0) :] = False
    return mask


def density(ctx: FrameContext) -> tuple[float, float]:
    """Mask samples per frame pixel (x, y): the model input's resolution, at most one per pixel."""
    h, w = ctx.frame_size
    return min(ctx.content[1] / w, 1.0), min(ctx.content[0] / h, 1.0)


def instance_mask(
    coeffs: np.ndarray, protos: np.ndarray, box: np.ndarray, ctx: FrameContext
) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """The box's window (x0, y0, x1, y1) in frame pixels and its bool mask, from the prototypes under it.

    Logits are sampled bilinearly at frame pixels; for frames larger than the model input, at the
    input's resolution, then resized bilinearly (ultralytics' own default also resamples twice).
    """
    h, w = ctx.frame_size
    x0, y0 = max(math.floor(box[0]), 0), max(math.floor(box[1]), 0)
    x1, y1 = min(math.ceil(box[2]), w), min(math.ceil(box[3]), h)
    if x1 <= x0 or y1 <= y0:
        return (x0, y0, x0, y0), np.zeros((0, 0), bool)
    ax, bx, ay, by = _proto_map(ctx, protos.shape[1:])
    fx, fy = density(ctx)
    sw, sh = max(round((x1 - x0) * fx), 1), max(round((y1 - y0) * fy), 1)
    sx, sy = (x1 - x0) / sw, (y1 - y0) / sh  # frame pixels per sample
    m = np.array(
        [[ax * sx, 0, (x0 + 0.5 * sx - 0.5) * ax + bx], [0, ay * sy, (y0 + 0.5 * sy - 0.5) * ay + by]]
    )
    sampled = _sample(coeffs, protos, m, (sw, sh))
    if (sw, sh) != (x1 - x0, y1 - y0):  # resize is several times cheaper per pixel than warpAffine
        sampled = cv2.resize(sampled, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    # pixel i stays when box[0] <= i < box[2] (ultralytics' crop_mask)
    return (x0, y0, x1, y1), _crop(sampled > 0, (box[0] - x0, box[1] - y0), (box[2] - x0, box[3] - y0))


GRID_DENSITY = 0.5  # frames with at least 2x the model input's pixels per axis are painted on a grid


class MaskGrid:
    """Where instances are sampled once each and painted: the frame itself, or for frames of 2x the model
    input per axis or more (1080p for a 640 model), the frame at the input's resolution, resized to the
    frame (nearest, pixel centres aligned) at the end. The frame-resolution grid samples each pixel
    bilinearly from the prototypes once, as ultralytics' process_mask_native does."""

    def __init__(self, ctx: FrameContext, protos: np.ndarray) -> None:
        h, w = ctx.frame_size
        fx, fy = density(ctx)
        if max(fx, fy) > GRID_DENSITY:
            fx = fy = 1.0
        self.ctx, self.protos = ctx, protos
        self.size = (max(round(h * fy), 1), max(round(w * fx), 1))  # (gh, gw)
        self.step = (w / self.size[1], h / self.size[0])  # frame pixels per grid pixel (x, y)
        self.map = _proto_map(ctx, protos.shape[1:])
        self.label = np.zeros(self.size, np.uint8)

    def windows(self, boxes: np.ndarray) -> tuple[list[list[int]], np.ndarray]:
        """Each box's grid window [gx0, gy0, gx1, gy1) holding exactly the grid pixels its mask may keep,
        and the affine maps (window col, row) -> prototype (x, y), all boxes at once.

        Grid pixel g sits at frame index (g+0.5)s-0.5 and is kept when box[0] <= (g+0.5)s-0.5 < box[2]
        (ultralytics' crop_mask), i.e. ceil((box[0]+0.5)/s-0.5) <= g < ceil((box[2]+0.5)/s-0.5)."""
        (sx, sy), (gh, gw) = self.step, self.size
        ax, bx, ay, by = self.map
        step = np.array([sx, sy, sx, sy])
        edges = np.ceil((boxes.astype(np.float64) + 0.5) / step - 0.5)
        win = np.clip(edges, 0, [gw, gh, gw, gh]).astype(np.int64)
        maps = np.zeros((len(boxes), 2, 3))
        maps[:, 0, 0], maps[:, 1, 1] = ax * sx, ay * sy
        maps[:, 0, 2] = ((win[:, 0] + 0.5) * sx - 0.5) * ax + bx
        maps[:, 1, 2] = ((win[:, 1] + 0.5) * sy - 0.5) * ay + by
        return win.tolist(), maps

    def mask(self, coeffs: np.ndarray, window: list[int], m: np.ndarray) -> np.ndarray:
        """The bool mask of one window from `windows` (empty when the window is)."""
        gx0, gy0, gx1, gy1 = window
        if gx1 <= gx0 or gy1 <= gy0:
            return np.zeros((0, 0), bool)
        return _sample(coeffs, self.protos, m, (gx1 - gx0, gy1 - gy0)) > 0

    def paint(self, corner: tuple[int, int], mask: np.ndarray, class_id: int) -> None:
        gx0, gy0 = corner
        np.putmask(self.label[gy0 : gy0 + mask.shape[0], gx0 : gx0 + mask.shape[1]], mask, class_id)

    def label_map(self) -> np.ndarray:
        h, w = self.ctx.frame_size
        if self.size == (h, w):
            return self.label
        return cv2.resize(self.label, (w, h), interpolation=cv2.INTER_NEAREST_EXACT)  # pixel centres aligned


def yolo_seg(
    outputs: dict[str, np.ndarray],
    ctx: FrameContext,
    meta: ArtifactMetadata,
    keep_classes: frozenset[int] | None = None,
) -> Prediction:
    """YOLOv8-seg outputs -> instances (class id = ultralytics cls + 1), map painted most-confident last.

    keep_classes (prodseg ids) filters candidates before NMS, as ultralytics' `classes=` does. Each
    instance is sampled once on the MaskGrid, which decides whether its mask is empty (such detections
    are dropped, as ultralytics does) and paints the label map; its full-resolution mask is computed
    only when read (`Detection.window_mask`), so a 1080p frame costs about what the model input does.
    """
    pred, protos = _split_yolo(outputs)
    boxes, scores, classes, coeffs = candidates(pred, meta.num_classes - 1, meta.confidence_threshold)
    if keep_classes is not None:
        wanted = np.isin(classes + 1, list(keep_classes))
        boxes, scores, classes, coeffs = boxes[wanted], scores[wanted], classes[wanted], coeffs[wanted]
    keep = nms(boxes, scores, classes, meta.iou_threshold, meta.max_det)
    frame_boxes = boxes_to_frame(boxes[keep], ctx)
    grid = MaskGrid(ctx, protos)
    windows, maps = grid.windows(frame_boxes)
    found: list[tuple[Detection, tuple[int, int], np.ndarray]] = []
    for k, box, window, m in zip(keep.tolist(), frame_boxes, windows, maps, strict=True):
        low = grid.mask(coeffs[k], window, m)
        if low.any():
            full = functools.partial(instance_mask, coeffs[k], protos, box, ctx)
            det = Detection(
                box, float(scores[k]), int(classes[k]) + 1, frame_size=ctx.frame_size, window_fn=full
            )
            found.append((det, (window[0], window[1]), low))
    for det, corner, low in reversed(found):  # ascending confidence: the most confident ends on top
        grid.paint(corner, low, det.class_id)
    return Prediction(label_map=grid.label_map(), instances=[d for d, _, _ in found])


POSTPROCESS: dict[str, Callable[..., Prediction]] = {"semantic_logits": semantic, "yolo_seg": yolo_seg}
