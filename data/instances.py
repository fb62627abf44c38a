"""Instance annotations in memory: the shared currency of the COCO and YOLO-seg readers/writers,
the synthetic generator and the YOLOv8-seg training targets.

Class ids are *semantic* indices (1..num_classes-1, 0 = background), so an instance paints directly
into a label mask; YOLO-seg files store `class_id - 1`, COCO `category_id = class_id`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Instance:
    class_id: int
    mask: np.ndarray  # bool (H, W): the visible pixels of this object
    score: float = 1.0
    iscrowd: bool = False


@dataclass
class ImageRecord:
    file_name: str  # relative to the dataset's images/ folder
    height: int
    width: int
    instances: list[Instance] = field(default_factory=list)

    @property
    def stem(self) -> str:
        return self.file_name.rsplit(".", 1)[0]


def instances_from_id_map(semantic: np.ndarray, ids: np.ndarray) -> list[Instance]:
    """Split an instance-id map (0 = none, k = instance k) into Instances classed by the semantic mask.

    Each instance takes the most frequent semantic label under it (ignoring 0 and 255).
    """
    out = []
    for k in np.unique(ids):
        if k == 0:
            continue
        m = ids == k
        labels = semantic[m]
        labels = labels[(labels != 0) & (labels != 255)]
        if labels.size == 0:
            continue
        out.append(Instance(int(np.bincount(labels).argmax()), m))
    return out


def id_map_from_instances(instances: list[Instance], shape: tuple[int, int]) -> np.ndarray:
    """Paint instances (later ones on top) into an int32 id map: 0 = none, i+1 = instances[i]."""
    ids = np.zeros(shape, np.int32)
    for i, inst in enumerate(instances):
        if not inst.iscrowd:
            ids[inst.mask] = i + 1
    return ids


def semantic_from_instances(
    instances: list[Instance], shape: tuple[int, int], ignore_crowd: bool = True
) -> np.ndarray:
    """Paint instances into a uint8 label mask; crowd regions become 255 (ignore) when asked."""
    mask = np.zeros(shape, np.uint8)
    for inst in instances:
        if inst.iscrowd:
            if ignore_crowd:
                mask[inst.mask] = 255
            continue
        mask[inst.mask] = inst.class_id
    return mask
