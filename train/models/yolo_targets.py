"""Ultralytics segmentation targets derived on the fly from a semantic mask and an instance-id map."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def instance_table(semantic: Tensor, instances: Tensor, num_classes: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per instance id of one image: (ids, majority semantic class, pixel xyxy box, x2/y2 exclusive).

    Only foreground labels 1..num_classes-1 vote; ids with no foreground pixel are dropped.
    """
    inst = instances.long()
    sem = semantic.long()
    n_ids = int(inst.max()) + 1 if inst.numel() else 1
    votes = (inst > 0) & (sem > 0) & (sem < num_classes)
    counts = torch.zeros(n_ids, num_classes, dtype=torch.long, device=inst.device)
    counts.index_put_((inst[votes], sem[votes]), torch.ones_like(inst[votes]), accumulate=True)
    h, w = inst.shape
    ys = torch.arange(h, device=inst.device).view(h, 1).expand(h, w).reshape(-1)
    xs = torch.arange(w, device=inst.device).view(1, w).expand(h, w).reshape(-1)
    flat = inst.reshape(-1)
    lo = torch.full((n_ids,), max(h, w), dtype=torch.long, device=inst.device)
    hi = torch.full((n_ids,), -1, dtype=torch.long, device=inst.device)
    x1 = lo.scatter_reduce(0, flat, xs, "amin")
    y1 = lo.scatter_reduce(0, flat, ys, "amin")
    x2 = hi.scatter_reduce(0, flat, xs, "amax") + 1
    y2 = hi.scatter_reduce(0, flat, ys, "amax") + 1
    keep = counts.sum(1) > 0
    keep[0] = False
    ids = keep.nonzero().squeeze(1)
    boxes = torch.stack([x1, y1, x2, y2], 1)[ids]
    return ids, counts[ids].argmax(1), boxes


def yolo_targets(
    semantic: Tensor, instances: Tensor, num_classes: int, mask_ratio: int = 4
) -> dict[str, Tensor]:
    """The batch dict `v8SegmentationLoss` expects with `overlap_mask=True`.

    `batch_idx` (N,), `cls` (N,1) = semantic class - 1, `bboxes` (N,4) normalised xywh, and `masks`
    (B, H/mask_ratio, W/mask_ratio) where value k marks the k-th target of that image (ultralytics'
    overlap format; our instance maps never overlap, so the area sort ultralytics does is not needed).
    """
    b, h, w = instances.shape
    rows, maps = [], []
    scale = torch.tensor([w, h, w, h], dtype=torch.float32, device=instances.device)
    for i in range(b):
        ids, classes, boxes = instance_table(semantic[i], instances[i], num_classes)
        relabel = torch.zeros(int(instances[i].max()) + 1, dtype=torch.long, device=instances.device)
        relabel[ids] = torch.arange(1, len(ids) + 1, device=instances.device)
        maps.append(relabel[instances[i].long()])
        xyxy = boxes.float() / scale
        xywh = torch.cat([(xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2]], 1)
        idx = torch.full((len(ids), 1), float(i), device=instances.device)
        rows.append(torch.cat([idx, (classes - 1).float().unsqueeze(1), xywh], 1))
    table = torch.cat(rows) if rows else torch.zeros(0, 6, device=instances.device)
    masks = torch.stack(maps).float()
    if mask_ratio > 1:
        masks = F.interpolate(masks[:, None], size=(h // mask_ratio, w // mask_ratio), mode="nearest")[:, 0]
    return {"batch_idx": table[:, 0], "cls": table[:, 1:2], "bboxes": table[:, 2:6], "masks": masks}
