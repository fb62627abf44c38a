"""Exports of labelling tools, written the way each tool lays them out, around shapes drawn with OpenCV.

Every builder returns the export folder and the label masks a faithful import must reproduce exactly
(by dataset stem). Images are 64 (H) x 80 (W) so that a swapped width and height shows.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from prodseg.data.imageio import write_image

H, W = 64, 80
NAMES = ("background", "bottle", "can")  # the user's classes in every export below
RECT = (5, 6, 24, 29)  # x0, y0, x1, y1 inclusive: a bottle
CIRCLE = ((50, 20), 9)  # centre, radius: a can
TRIANGLE = np.array([[40, 40], [70, 45], [50, 60]], np.int32)  # a bottle


def rect_mask(x0: int = RECT[0], y0: int = RECT[1], x1: int = RECT[2], y1: int = RECT[3]) -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    cv2.rectangle(m, (x0, y0), (x1, y1), 1, -1)
    return m.astype(bool)


def circle_mask() -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    cv2.circle(m, CIRCLE[0], CIRCLE[1], 1, -1)
    return m.astype(bool)


def triangle_mask() -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    cv2.fillPoly(m, [TRIANGLE.reshape(-1, 1, 2)], 1)
    return m.astype(bool)


def paint(*objects: tuple[int, np.ndarray]) -> np.ndarray:
    """The label mask of (class, mask) objects, later ones on top."""
    out = np.zeros((H, W), np.uint8)
    for cls, m in objects:
        out[m] = cls
    return out


def photo(path: Path, seed: int = 0) -> Path:
    write_image(path, np.random.default_rng(seed).integers(0, 255, (H, W, 3), dtype=np.uint8))
    return path


def uncompressed_rle(mask: np.ndarray) -> dict:
    """A mask as CVAT writes brush/mask annotations: column-major run lengths, starting with zeros."""
    flat = mask.flatten(order="F").astype(np.uint8)
    change = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    return {"counts": np.diff(np.concatenate([[0], change])).tolist(), "size": [H, W]}


def coco_box(mask: np.ndarray) -> list[float]:
    return [float(v) for v in mask_utils.toBbox(mask_utils.encode(np.asfortranarray(mask.astype(np.uint8))))]


def corner_polygon(x0: int, y0: int, x1: int, y1: int) -> list[float]:
    """COCO polygon of the pixels x0..x1, y0..y1 (inclusive): their outer corners."""
    return [x0, y0, x1 + 1, y0, x1 + 1, y1 + 1, x0, y1 + 1]


# ---- CVAT "COCO 1.0"
def cvat_coco(root: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """annotations/instances_default.json + images/default/<subfolder>/<frame>: one polygon, two brush
    masks (RLE, iscrowd 1) and a box-only object per image; two of the three images share the name img1."""
    anns, images = [], []
    for n, (folder, name) in enumerate((("store_a", "img1"), ("store_b", "img1"), ("store_b", "img2")), 1):
        photo(root / "images" / "default" / folder / f"{name}.jpg", n)
        images.append(
            {
                "id": n,
                "width": W,
                "height": H,
                "file_name": f"{folder}/{name}.jpg",
                "license": 0,
                "flickr_url": "",
                "coco_url": "",
                "date_captured": 0,
            }
        )
        objects = [
            (1, [corner_polygon(*RECT)], 0),
            (2, uncompressed_rle(circle_mask()), 1),
            (1, uncompressed_rle(triangle_mask()), 1),
            (2, [], 0),
        ]
        for cat, seg, crowd in objects:
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": n,
                    "category_id": cat,
                    "segmentation": seg,
                    "area": 0.0,
                    "bbox": [60.0, 2.0, 10.0, 10.0],
                    "iscrowd": crowd,
                    "attributes": {"occluded": False},
                }
            )
    data = {
        "licenses": [{"name": "", "id": 0, "url": ""}],
        "info": {
            "contributor": "",
            "date_created": "",
            "description": "",
            "url": "",
            "version": "",
            "year": "",
        },
        "categories": [
            {"id": 1, "name": "bottle", "supercategory": ""},
            {"id": 2, "name": "can", "supercategory": ""},
        ],
        "images": images,
        "annotations": anns,
    }
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "instances_default.json").write_text(json.dumps(data))
    want = paint((1, rect_mask()), (2, circle_mask()), (1, triangle_mask()))
    return root, {"store_a__img1": want, "store_b__img1": want, "img2": want}


# ---- CVAT "Segmentation mask 1.1" (Pascal VOC layout)
LABELMAP = "# label:color_rgb:parts:actions\nbottle:250,50,83::\nbackground:0,0,0::\ncan:51,221,255::\n"
COLORS = {0: (0, 0, 0), 1: (250, 50, 83), 2: (51, 221, 255)}
OBJECT_COLORS = ((128, 0, 0), (0, 128, 0), (128, 128, 0))  # VOC palette entries 1..3


def cvat_segmentation_mask(root: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """labelmap.txt, JPEGImages/, SegmentationClass/ and SegmentationObject/ colour PNGs, and
    ImageSets/Segmentation/Train.txt + Validation.txt (CVAT subsets)."""
    (root / "labelmap.txt").parent.mkdir(parents=True, exist_ok=True)
    (root / "labelmap.txt").write_text(LABELMAP)
    objects = [(1, rect_mask()), (2, circle_mask()), (1, triangle_mask())]
    want = paint(*objects)
    for k, stem in enumerate(("frame_000000", "frame_000001", "frame_000002")):
        photo(root / "JPEGImages" / f"{stem}.jpg", k)
        colour = np.zeros((H, W, 3), np.uint8)
        instances = np.zeros((H, W, 3), np.uint8)
        for (cls, m), obj in zip(objects, OBJECT_COLORS, strict=True):
            colour[m] = COLORS[cls]
            instances[m] = obj
        write_image(root / "SegmentationClass" / f"{stem}.png", colour)
        write_image(root / "SegmentationObject" / f"{stem}.png", instances)
    sets = root / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    (sets / "Train.txt").write_text("frame_000000\nframe_000002\n")
    (sets / "Validation.txt").write_text("frame_000001\n")
    return root, {"frame_000000": want, "frame_000001": want, "frame_000002": want}


# ---- Roboflow
ROBOFLOW_SPLITS = {"train": ("a.rf.0f1e", "d.rf.41b0"), "valid": ("b.rf.9c2d",), "test": ("c.rf.77aa",)}
ROBOFLOW_STEMS = [stem for stems in ROBOFLOW_SPLITS.values() for stem in stems]


def roboflow_coco(root: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """train/ valid/ test/ each with _annotations.coco.json and its images; category 0 is the
    project's name, the supercategory of the real classes, used by no annotation."""
    cats = [
        {"id": 0, "name": "shelf-products", "supercategory": "none"},
        {"id": 1, "name": "bottle", "supercategory": "shelf-products"},
        {"id": 2, "name": "can", "supercategory": "shelf-products"},
    ]
    small = (50, 40, 70, 55)
    for k, (split, stems) in enumerate(ROBOFLOW_SPLITS.items()):
        images, anns = [], []
        for n, stem in enumerate(stems):
            photo(root / split / f"{stem}.jpg", 3 * k + n)
            images.append(
                {
                    "id": n,
                    "license": 1,
                    "file_name": f"{stem}.jpg",
                    "height": H,
                    "width": W,
                    "date_captured": "2026-01-01T00:00:00+00:00",
                }
            )
            anns += [
                {
                    "id": 2 * n,
                    "image_id": n,
                    "category_id": 1,
                    "segmentation": [corner_polygon(*RECT)],
                    "area": 480,
                    "bbox": [5, 6, 20, 24],
                    "iscrowd": 0,
                },
                {
                    "id": 2 * n + 1,
                    "image_id": n,
                    "category_id": 2,
                    "segmentation": [corner_polygon(*small)],
                    "area": 336,
                    "bbox": [50, 40, 21, 16],
                    "iscrowd": 0,
                },
            ]
        data = {
            "info": {"year": "2026", "version": "1", "description": "Exported from roboflow.com"},
            "licenses": [
                {"id": 1, "url": "https://creativecommons.org/licenses/by/4.0/", "name": "CC BY 4.0"}
            ],
            "categories": cats,
            "images": images,
            "annotations": anns,
        }
        (root / split / "_annotations.coco.json").write_text(json.dumps(data))
    (root / "README.roboflow.txt").write_text("Exported via roboflow.com\n")
    want = paint((1, rect_mask()), (2, rect_mask(*small)))
    return root, {stem: want for stem in ROBOFLOW_STEMS}


def yolo_line(cls: int, points: np.ndarray) -> str:
    """A YOLO-seg line of pixel-index vertices (class = index in `names`)."""
    norm = points.astype(np.float64) / [W, H]
    return f"{cls} " + " ".join(f"{v:.6f}" for v in norm.ravel()) + "\n"


RECT_POINTS = np.array([[RECT[0], RECT[1]], [RECT[2], RECT[1]], [RECT[2], RECT[3]], [RECT[0], RECT[3]]])


def _yolo_sample(images: Path, labels: Path, stem: str, seed: int) -> None:
    photo(images / f"{stem}.jpg", seed)
    labels.mkdir(parents=True, exist_ok=True)
    (labels / f"{stem}.txt").write_text(yolo_line(0, RECT_POINTS) + yolo_line(1, TRIANGLE))


YOLO_WANT = (1, rect_mask()), (2, triangle_mask())


def roboflow_yolo(root: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """data.yaml (train: ../train/images ...) + train/ valid/ test/ each with images/ and labels/."""
    for k, (split, stems) in enumerate(ROBOFLOW_SPLITS.items()):
        for n, stem in enumerate(stems):
            _yolo_sample(root / split / "images", root / split / "labels", stem, 3 * k + n)
    (root / "data.yaml").write_text(
        "train: ../train/images\nval: ../valid/images\ntest: ../test/images\n\nnc: 2\n"
        "names: ['bottle', 'can']\n\nroboflow:\n  workspace: ws\n  project: shelf-products\n"
        "  version: 1\n  license: CC BY 4.0\n  url: https://universe.roboflow.com/ws/shelf-products/dataset/1\n"
    )
    return root, {stem: paint(*YOLO_WANT) for stem in ROBOFLOW_STEMS}


def ultralytics_yolo(root: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """shelves.yaml with `path: .`, `train:` an image list, `val:` a list of two folders that both
    hold an img1.jpg, and `names` as a mapping."""
    _yolo_sample(root / "images" / "train", root / "labels" / "train", "t0", 0)
    _yolo_sample(root / "images" / "train", root / "labels" / "train", "t1", 1)
    for k, store in enumerate(("store_a", "store_b")):
        _yolo_sample(root / "images" / store, root / "labels" / store, "img1", 2 + k)
    (root / "train.txt").write_text("./images/train/t0.jpg\n./images/train/t1.jpg\n")
    (root / "shelves.yaml").write_text(
        "path: .\ntrain: train.txt\nval: [images/store_a, images/store_b]\nnames:\n  0: bottle\n  1: can\n"
    )
    want = paint(*YOLO_WANT)
    return root, {s: want for s in ("t0", "t1", "store_a__img1", "store_b__img1")}


# ---- LabelMe
def labelme_json(image_name: str, shapes: list[dict], image_data: bytes | None = None) -> str:
    return json.dumps(
        {
            "version": "5.4.1",
            "flags": {},
            "shapes": shapes,
            "imagePath": image_name,
            "imageData": base64.b64encode(image_data).decode() if image_data else None,
            "imageHeight": H,
            "imageWidth": W,
        }
    )


def shape(label: str, kind: str, points, group=None) -> dict:
    return {
        "label": label,
        "points": [[float(x), float(y)] for x, y in points],
        "group_id": group,
        "description": "",
        "shape_type": kind,
        "flags": {},
        "mask": None,
    }


LABELME_SHAPES = [
    shape("bottle", "rectangle", [RECT[:2], RECT[2:]]),
    shape("can", "circle", [CIRCLE[0], (CIRCLE[0][0] + CIRCLE[1], CIRCLE[0][1])]),
    shape("bottle", "polygon", TRIANGLE.tolist()),
    shape("can", "line", [(1, 1), (10, 1)]),  # no area: skipped
]


def labelme(root: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """store_a/img1.{jpg,json}, store_b/img1.{jpg,json}, and store_b/img2.json with the image only
    embedded as imageData."""
    for k, store in enumerate(("store_a", "store_b")):
        photo(root / store / "img1.jpg", k)
        (root / store / "img1.json").write_text(labelme_json("img1.jpg", LABELME_SHAPES))
    embedded = photo(root / "tmp.png", 5).read_bytes()
    (root / "tmp.png").unlink()
    (root / "store_b" / "img2.json").write_text(labelme_json("img2.png", LABELME_SHAPES, embedded))
    want = paint((1, rect_mask()), (2, circle_mask()), (1, triangle_mask()))
    return root, {"store_a__img1": want, "store_b__img1": want, "img2": want}


BUILDERS = {
    "cvat-coco": (cvat_coco, "coco"),
    "cvat-segmentation-mask": (cvat_segmentation_mask, "voc"),
    "roboflow-coco": (roboflow_coco, "coco"),
    "roboflow-yolo": (roboflow_yolo, "yolo"),
    "ultralytics": (ultralytics_yolo, "yolo"),
    "labelme": (labelme, "labelme"),
}
