"""Hostile inputs for `prodseg-data convert|check|synth|video`: each gives exit 2 (1 for check problems)
with one `error: ...` line naming the entry, no traceback, and nothing under the output name."""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from prodseg.data.cli import main
from prodseg.data.formats.convert import convert
from prodseg.data.imageio import write_image
from tests.data.formats_builders import build_dataset
from tests.data.tool_exports import (
    cvat_segmentation_mask,
    labelme,
    labelme_json,
    roboflow_coco,
    roboflow_yolo,
    shape,
    ultralytics_yolo,
)

H = W = 64


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height in its IHDR (with one tiny compressed row): a size bomb."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    body = struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    idat = b"IDAT" + zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + body + struct.pack(">I", 64) + idat + struct.pack(">I", zlib.crc32(idat))


def valid_coco() -> dict:
    return {
        "images": [{"id": 1, "file_name": "img0.png", "height": H, "width": W}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 3,
                "iscrowd": 0,
                "segmentation": [[10, 10, 30, 10, 30, 30, 10, 30]],
            }
        ],
        "categories": [{"id": 3, "name": "bottle"}],
    }


def outside_png(tmp: Path) -> Path:
    write_image(tmp / "secret.png", np.zeros((H, W, 3), np.uint8))
    return tmp / "secret.png"


def coco_src(
    tmp: Path, mutate: Callable[[dict], object] | None = None, text: str | bytes | None = None
) -> list:
    src = tmp / "src"
    write_image(src / "images" / "img0.png", np.zeros((H, W, 3), np.uint8))
    data = valid_coco()
    if mutate:
        mutate(data)
    text = json.dumps(data) if text is None else text
    (src / "instances.json").write_bytes(text.encode() if isinstance(text, str) else text)
    return ["convert", "--from", "coco", src, "--to", tmp / "out"]


def prodseg_src(tmp: Path, fmt: str = "prodseg") -> Path:
    """A small valid dataset in `fmt`, at tmp/src."""
    build_dataset(tmp / "ds")
    if fmt == "prodseg":
        return tmp / "ds"
    return convert(tmp / "ds", tmp / "src", "prodseg", fmt)


def symlink(link: Path, target: Path) -> None:
    if link.exists() or link.is_symlink():
        link.unlink()
    link.symlink_to(target)


def _set(path: list, value) -> Callable[[dict], None]:
    def mutate(data: dict) -> None:
        obj = data
        for k in path[:-1]:
            obj = obj[k]
        obj[path[-1]] = value

    return mutate


def _del(path: list) -> Callable[[dict], None]:
    def mutate(data: dict) -> None:
        obj = data
        for k in path[:-1]:
            obj = obj[k]
        del obj[path[-1]]

    return mutate


def _dup(key: str) -> Callable[[dict], None]:
    return lambda d: d[key].append(dict(d[key][0]))


# ---- COCO: (id, setup(tmp) -> CLI args, phrase in the error line)
def _coco_abs(tmp):
    return coco_src(tmp, _set(["images", 0, "file_name"], str(outside_png(tmp))))


def _coco_climb(tmp):
    outside_png(tmp)
    return coco_src(tmp, _set(["images", 0, "file_name"], "../../secret.png"))


def _coco_image_symlink(tmp):
    args = coco_src(tmp)
    symlink(tmp / "src" / "images" / "img0.png", outside_png(tmp))
    return args


def _coco_json_symlink(tmp):
    args = coco_src(tmp)
    (tmp / "elsewhere.json").write_text(json.dumps(valid_coco()))
    symlink(tmp / "src" / "instances.json", tmp / "elsewhere.json")
    return args


def _coco_split_symlink(tmp):
    args = coco_src(tmp)
    (tmp / "src" / "splits").mkdir()
    (tmp / "list.txt").write_text("img0\n")
    symlink(tmp / "src" / "splits" / "train.txt", tmp / "list.txt")
    return args


def _rle(counts) -> Callable[[dict], None]:
    return _set(["annotations", 0, "segmentation"], {"size": [H, W], "counts": counts})


COCO_CASES = [
    ("absolute-file_name", _coco_abs, "image id 1 file_name '/"),
    ("climbing-file_name", _coco_climb, "outside the dataset folder"),
    ("image-symlink-outside", _coco_image_symlink, "image id 1 file_name 'img0.png': resolves to"),
    ("json-symlink-outside", _coco_json_symlink, "instances.json: resolves to"),
    ("split-symlink-outside", _coco_split_symlink, "train.txt: resolves to"),
    (
        "nul-in-file_name",
        lambda t: coco_src(t, _set(["images", 0, "file_name"], "a\0.png")),
        "not a usable path",
    ),
    ("empty-file_name", lambda t: coco_src(t, _set(["images", 0, "file_name"], "")), "'file_name' ''"),
    (
        "declared-size-differs",
        lambda t: coco_src(t, _set(["images", 0, "width"], 80)),
        "declared 80x64 (WxH) but the image is 64x64",
    ),
    ("zero-width", lambda t: coco_src(t, _set(["images", 0, "width"], 0)), "0x64 (WxH) is not a positive"),
    ("negative-height", lambda t: coco_src(t, _set(["images", 0, "height"], -5)), "is not a positive size"),
    ("fractional-width", lambda t: coco_src(t, _set(["images", 0, "width"], 6.5)), "'width' 6.5 is not"),
    (
        "declared-size-bomb",
        lambda t: coco_src(t, lambda d: d["images"][0].update(width=20000, height=20000)),
        "above the limit of 100,000,000 pixels",
    ),
    ("list-image-id", lambda t: coco_src(t, _set(["images", 0, "id"], [1])), "'id' [1] is not an integer"),
    ("dict-image-id", lambda t: coco_src(t, _set(["images", 0, "id"], {"a": 1})), "is not an integer"),
    ("duplicate-image-id", lambda t: coco_src(t, _dup("images")), "image id 1: the id is used twice"),
    ("duplicate-annotation-id", lambda t: coco_src(t, _dup("annotations")), "annotation id 1 is used twice"),
    ("duplicate-category-id", lambda t: coco_src(t, _dup("categories")), "category id 3 is used twice"),
    (
        "list-annotation-image_id",
        lambda t: coco_src(t, _set(["annotations", 0, "image_id"], [1])),
        "'image_id' [1] is not",
    ),
    (
        "unknown-image_id",
        lambda t: coco_src(t, _set(["annotations", 0, "image_id"], 42)),
        "annotation id 1: names image_id 42",
    ),
    (
        "unknown-category_id",
        lambda t: coco_src(t, _set(["annotations", 0, "category_id"], 99)),
        "annotation id 1: names category_id 99",
    ),
    (
        "missing-segmentation",
        lambda t: coco_src(t, _del(["annotations", 0, "segmentation"])),
        "annotation id 1: missing key 'segmentation'",
    ),
    ("missing-file_name", lambda t: coco_src(t, _del(["images", 0, "file_name"])), "missing key 'file_name'"),
    (
        "missing-annotation-id",
        lambda t: coco_src(t, _del(["annotations", 0, "id"])),
        "annotations[0]: missing key 'id'",
    ),
    ("category-without-name", lambda t: coco_src(t, _del(["categories", 0, "name"])), "missing key 'name'"),
    ("image-not-an-object", lambda t: coco_src(t, _set(["images", 0], 5)), "images[0]: expected an object"),
    ("annotation-not-an-object", lambda t: coco_src(t, _set(["annotations", 0], [])), "annotations[0]"),
    ("not-json", lambda t: coco_src(t, text="{images: ["), "not valid JSON"),
    ("json-array", lambda t: coco_src(t, text="[1, 2]"), "expected a COCO object"),
    ("json-null", lambda t: coco_src(t, text="null"), "expected a COCO object"),
    ("json-deep", lambda t: coco_src(t, text="[" * 200_000), "not valid JSON"),
    ("json-huge-number", lambda t: coco_src(t, text='{"images": ' + "9" * 5000 + "}"), "not valid JSON"),
    ("not-utf8", lambda t: coco_src(t, text=b'{"images": "\xff"}'), "not valid JSON"),
    (
        "flat-polygon",
        lambda t: coco_src(t, _set(["annotations", 0, "segmentation"], [1, 2, 3, 4, 5, 6])),
        "polygons must be lists",
    ),
    (
        "odd-polygon",
        lambda t: coco_src(t, _set(["annotations", 0, "segmentation"], [[1, 2, 3, 4, 5, 6, 7]])),
        "in pairs",
    ),
    (
        "nan-polygon",
        lambda t: coco_src(t, text=json.dumps(valid_coco()).replace("[[10, 10", "[[NaN, 10")),
        "finite",
    ),
    (
        "far-polygon",
        lambda t: coco_src(t, _set(["annotations", 0, "segmentation"], [[0, 0, 1e9, 0, 0, 9]])),
        "far outside the 64x64 image",
    ),
    (
        "string-segmentation",
        lambda t: coco_src(t, _set(["annotations", 0, "segmentation"], "abc")),
        "'segmentation' must be polygons",
    ),
    (
        "rle-size-differs",
        lambda t: coco_src(t, _set(["annotations", 0, "segmentation"], {"size": [8, 8], "counts": [64]})),
        "RLE 'size' [8, 8]",
    ),
    ("rle-counts-overflow", lambda t: coco_src(t, _rle([10, 100_000])), "adding up to"),
    ("rle-negative-counts", lambda t: coco_src(t, _rle([-1, H * W + 1])), "adding up to"),
    ("rle-string-garbage", lambda t: coco_src(t, _rle("\x7f\x7f")), "not a valid compressed RLE"),
    ("rle-string-overflow", lambda t: coco_src(t, _rle("0PPPPP5")), "do not cover"),
    ("rle-counts-number", lambda t: coco_src(t, _rle(5)), "neither a list nor a string"),
    ("bad-score", lambda t: coco_src(t, _set(["annotations", 0, "score"], "high")), "'score' 'high'"),
    ("bad-iscrowd", lambda t: coco_src(t, _set(["annotations", 0, "iscrowd"], 2)), "'iscrowd' 2"),
]


# ---- YOLO-seg, colour masks, prodseg folders
def _yolo(tmp, change: Callable[[Path], None]):
    src = prodseg_src(tmp, "yolo")
    change(src)
    return ["convert", "--from", "yolo", src, "--to", tmp / "out"]


def _cm(tmp, change: Callable[[Path], None]):
    src = prodseg_src(tmp, "color-masks")
    change(src)
    return ["convert", "--from", "color-masks", src, "--to", tmp / "out"]


def _ps(tmp, change: Callable[[Path], None], to_format: str = "prodseg"):
    src = prodseg_src(tmp)
    change(src)
    return ["convert", "--from", "prodseg", src, "--to", tmp / "out", "--to-format", to_format]


def _link_out(rel: str, content: bytes | None = None) -> Callable[[Path], None]:
    """Replace src/rel by a symlink to a file outside the dataset (a copy of it, or `content`)."""

    def change(src: Path) -> None:
        target = src.parent / ("outside" + Path(rel).suffix)
        target.write_bytes(content if content is not None else (src / rel).read_bytes())
        symlink(src / rel, target)

    return change


def _yaml_line(line: str) -> Callable[[Path], None]:
    return lambda src: (src / "dataset.yaml").write_text(
        (src / "dataset.yaml").read_text().replace("train: yolo_train.txt", line)
    )


def _write(rel: str, data: bytes | str) -> Callable[[Path], None]:
    def change(src: Path) -> None:
        p = src / rel
        p.write_bytes(data) if isinstance(data, bytes) else p.write_text(data)

    return change


def _fifo(src: Path) -> None:
    os.mkfifo(src / "images" / "pipe.png")


FOLDER_CASES = [
    (
        "yolo-image-symlink",
        lambda t: _yolo(t, _link_out("images/img0.png")),
        "yolo_train.txt:1 './images/img0.png': resolves to",
    ),
    ("yolo-label-symlink", lambda t: _yolo(t, _link_out("labels/img0.txt")), "img0.txt: resolves to"),
    ("yolo-yaml-symlink", lambda t: _yolo(t, _link_out("dataset.yaml")), "dataset.yaml: resolves to"),
    ("yolo-list-climbs", lambda t: _yolo(t, _yaml_line("train: ../../list.txt")), "outside the dataset"),
    ("yolo-list-absolute", lambda t: _yolo(t, _yaml_line("train: /etc/list.txt")), "is an absolute path"),
    (
        "yolo-list-line-climbs",
        lambda t: _yolo(t, _write("yolo_train.txt", "../../x/img0.png\n")),
        "yolo_train.txt:1 '../../x/img0.png': resolves to",
    ),
    (
        "yolo-list-line-absolute",
        lambda t: _yolo(t, _write("yolo_train.txt", "/data/img0.png\n")),
        "yolo_train.txt:1 '/data/img0.png': is an absolute path",
    ),
    (
        "yolo-nan-label",
        lambda t: _yolo(t, _write("labels/img0.txt", "0 nan 0.1 0.2 0.2 0.3 0.1\n")),
        "finite numbers, found nan",
    ),
    (
        "yolo-inf-label",
        lambda t: _yolo(t, _write("labels/img0.txt", "0 inf 0.1 0.2 0.2 0.3 0.1\n")),
        "finite numbers, found inf",
    ),
    (
        "yolo-binary-label",
        lambda t: _yolo(t, _write("labels/img0.txt", b"\xff\xfe\x00")),
        "not a UTF-8 text file",
    ),
    (
        "yolo-bomb-image",
        lambda t: _yolo(t, _write("images/img0.png", png_header(20000, 20000))),
        "image size 20000x20000 (WxH, 400,000,000 pixels) is above the limit",
    ),
    ("yolo-names-not-a-list", lambda t: _yolo(t, _write("dataset.yaml", "names: 5\n")), "needs 'names'"),
    ("cm-image-symlink", lambda t: _cm(t, _link_out("images/img0.png")), "img0.png: resolves to"),
    ("cm-mask-symlink", lambda t: _cm(t, _link_out("masks/img1.png")), "img1.png: resolves to"),
    ("cm-classes-symlink", lambda t: _cm(t, _link_out("classes.yaml")), "classes.yaml: resolves to"),
    ("cm-split-symlink", lambda t: _cm(t, _link_out("splits/val.txt")), "val.txt: resolves to"),
    (
        "cm-bad-colour",
        lambda t: _cm(t, _write("classes.yaml", "names: [a, b]\ncolors: [[0,0,0],[300,0,0]]")),
        "colour [300, 0, 0] is not [r, g, b]",
    ),
    (
        "cm-infinite-colour",
        lambda t: _cm(t, _write("classes.yaml", "names: [a]\ncolors: [[.inf, 0, 0]]\n")),
        "classes.yaml: expected 'names",
    ),
    ("cm-bomb-mask", lambda t: _cm(t, _write("masks/img0.png", png_header(30000, 10000))), "above the limit"),
    ("ps-image-symlink", lambda t: _ps(t, _link_out("images/img0.png")), "img0.png: resolves to"),
    (
        "ps-image-symlink-export",
        lambda t: _ps(t, _link_out("images/img0.png"), "coco"),
        "img0.png: resolves to",
    ),
    ("ps-classes-symlink", lambda t: _ps(t, _link_out("classes.yaml")), "classes.yaml: resolves to"),
    ("ps-dir-symlink", lambda t: _ps(t, lambda s: (s / "extra").symlink_to(s.parent)), "extra: resolves to"),
    ("ps-loop-symlink", lambda t: _ps(t, lambda s: (s / "images" / "loop").symlink_to(s)), "(a loop)"),
    (
        "ps-broken-symlink",
        lambda t: _ps(t, lambda s: (s / "images" / "gone.png").symlink_to(s / "nope")),
        "a broken symlink",
    ),
    ("ps-fifo", lambda t: _ps(t, _fifo), "pipe.png: not a regular file"),
]


# ---- labelling-tool exports, imported without --from (the layout is detected)
def _tool(build: Callable[[Path], tuple], change: Callable[[Path], None], *extra: object):
    def setup(tmp: Path) -> list:
        src, _ = build(tmp / "src")
        change(src)
        return ["convert", src, "--to", tmp / "out", *[str(e).format(t=tmp) for e in extra]]

    return setup


def _labelmap(text: str | bytes) -> Callable[[Path], None]:
    return _write("labelmap.txt", text)


def _lm_json(rel: str, image: str, shapes: list | None = None, **extra: object) -> Callable[[Path], None]:
    def change(src: Path) -> None:
        data = json.loads(
            labelme_json(
                image,
                shapes if shapes is not None else [shape("bottle", "polygon", [(1, 1), (9, 1), (9, 9)])],
            )
        )
        data.update(extra)
        (src / rel).write_text(json.dumps(data))

    return change


def _secret_beside(src: Path) -> None:
    outside_png(src.parent)


def _both(*changes: Callable[[Path], None]) -> Callable[[Path], None]:
    return lambda src: [c(src) for c in changes] and None


def _yaml(text: str, name: str = "data.yaml") -> Callable[[Path], None]:
    return _write(name, text)


_IDS = "ImageSets/Segmentation/Train.txt"
_RECTANGLE3 = [shape("bottle", "rectangle", [(1, 1), (5, 5), (9, 9)])]
_NAN_POINTS = [{"label": "bottle", "shape_type": "polygon", "points": [[float("nan"), 1], [9, 1], [9, 9]]}]

TOOL_CASES = [
    (
        "labelmap-short-line",
        _tool(cvat_segmentation_mask, _labelmap("bottle:250,50::\n")),
        "labelmap.txt:1: expected 'name:r,g,b::'",
    ),
    ("labelmap-no-colour", _tool(cvat_segmentation_mask, _labelmap("bottle\n")), "labelmap.txt:1: expected"),
    ("labelmap-colour-300", _tool(cvat_segmentation_mask, _labelmap("bottle:300,0,0::\n")), "values 0..255"),
    (
        "labelmap-duplicate",
        _tool(cvat_segmentation_mask, _labelmap("a:1,2,3::\na:4,5,6::\n")),
        "labelmap.txt: duplicate class names",
    ),
    (
        "labelmap-only-comments",
        _tool(cvat_segmentation_mask, _labelmap("# label:color_rgb:parts:actions\n")),
        "labelmap.txt: no classes",
    ),
    ("labelmap-binary", _tool(cvat_segmentation_mask, _labelmap(b"\xff\xfe:0,0,0")), "not a UTF-8 text file"),
    (
        "labelmap-symlink",
        _tool(cvat_segmentation_mask, _link_out("labelmap.txt")),
        "labelmap.txt: resolves to",
    ),
    (
        "voc-id-climbs",
        _tool(cvat_segmentation_mask, _write(_IDS, "../../../secret\n")),
        "id '../../../secret': resolves to",
    ),
    ("voc-id-absolute", _tool(cvat_segmentation_mask, _write(_IDS, "/etc/passwd\n")), "is an absolute path"),
    (
        "voc-image-missing",
        _tool(cvat_segmentation_mask, _write(_IDS, "frame_000009\n")),
        "no image frame_000009.jpg",
    ),
    (
        "voc-mask-missing",
        _tool(cvat_segmentation_mask, lambda s: (s / "SegmentationClass" / "frame_000001.png").unlink()),
        "frame_000001.png: class mask missing",
    ),
    (
        "voc-unknown-colour",
        _tool(cvat_segmentation_mask, _labelmap("background:0,0,0::\nbottle:9,50,83::\n")),
        "frame_000000.png: colour (250, 50, 83) at (x=5, y=6) is not a class colour",
    ),
    (
        "voc-mask-symlink",
        _tool(cvat_segmentation_mask, _link_out("SegmentationClass/frame_000000.png")),
        "frame_000000.png: resolves to",
    ),
    (
        "labelme-imagepath-climbs",
        _tool(labelme, _both(_secret_beside, _lm_json("store_a/img1.json", "../../secret.png"))),
        "imagePath '../../secret.png': resolves to",
    ),
    (
        "labelme-imagepath-absolute",
        _tool(labelme, _lm_json("store_a/img1.json", "/etc/hostname")),
        "imagePath '/etc/hostname': is an absolute path",
    ),
    ("labelme-imagepath-missing", _tool(labelme, _lm_json("store_a/img1.json", "")), "'imagePath' missing"),
    (
        "labelme-image-not-found",
        _tool(labelme, _lm_json("store_a/img1.json", "nope.jpg")),
        "nope.jpg: file not found",
    ),
    (
        "labelme-rectangle-3-points",
        _tool(labelme, _lm_json("store_a/img1.json", "img1.jpg", _RECTANGLE3)),
        "shapes[0]: a rectangle needs 2 points, got 3",
    ),
    (
        "labelme-nan-point",
        _tool(labelme, _lm_json("store_a/img1.json", "img1.jpg", _NAN_POINTS)),
        "shapes[0]: 'points' must be finite",
    ),
    (
        "labelme-far-point",
        _tool(
            labelme,
            _lm_json(
                "store_a/img1.json", "img1.jpg", [shape("bottle", "polygon", [(1, 1), (1e12, 1), (9, 9)])]
            ),
        ),
        "'points' must be finite and near the image",
    ),
    (
        "labelme-text-points",
        _tool(
            labelme,
            _lm_json(
                "store_a/img1.json",
                "img1.jpg",
                [{"label": "bottle", "shape_type": "polygon", "points": "abc"}],
            ),
        ),
        "'points' must be [[x, y], ...]",
    ),
    (
        "labelme-no-label",
        _tool(labelme, _lm_json("store_a/img1.json", "img1.jpg", [{"points": []}])),
        "shapes[0]: expected an object with a non-empty 'label'",
    ),
    (
        "labelme-bad-imagedata",
        _tool(labelme, _lm_json("store_a/img1.json", "gone.png", imageData="@@@")),
        "'imageData' is not base64",
    ),
    (
        "labelme-bomb-imagedata",
        _tool(
            labelme,
            _lm_json(
                "store_a/img1.json",
                "gone.png",
                imageData=__import__("base64").b64encode(png_header(20000, 20000)).decode(),
            ),
        ),
        "above the limit of 100,000,000 pixels",
    ),
    (
        "labelme-size-differs",
        _tool(labelme, _lm_json("store_a/img1.json", "img1.jpg", imageWidth=81)),
        "imageWidth/imageHeight 81x64 differ from the image's 80x64",
    ),
    (
        "labelme-label-not-in-classes",
        _tool(labelme, _write("../labels.txt", "bottle\n"), "--classes", "{t}/labels.txt"),
        "labels ['can'] of the LabelMe files are not in it",
    ),
    (
        "labelme-classes-missing",
        _tool(labelme, lambda s: None, "--classes", "{t}/nope.txt"),
        "nope.txt: --classes file not found",
    ),
    (
        "yaml-path-absolute-outside",
        _tool(roboflow_yolo, _yaml("path: /etc\ntrain: x\nnames: [a]\n")),
        "path: '/etc': is an absolute path outside the dataset folder",
    ),
    (
        "yaml-path-climbs",
        _tool(roboflow_yolo, _yaml("path: ../..\ntrain: x\nnames: [a]\n")),
        "path: '../..': resolves to",
    ),
    (
        "yaml-train-absolute-outside",
        _tool(roboflow_yolo, _yaml("train: /etc\nnames: [a]\n")),
        "train: '/etc': is an absolute path outside",
    ),
    (
        "yaml-val-missing",
        _tool(roboflow_yolo, _yaml("train: train/images\nval: nowhere\nnames: [a, b]\n")),
        "val: 'nowhere': not found",
    ),
    (
        "yaml-train-number",
        _tool(roboflow_yolo, _yaml("train: [5]\nnames: [a, b]\n")),
        "train: 5 is not a path",
    ),
    ("yaml-a-list", _tool(roboflow_yolo, _yaml("- a\n- b\n")), "expected keys 'names', 'train', 'val'"),
    ("yaml-broken", _tool(roboflow_yolo, _yaml("names: [a\n")), "data.yaml: data YAML is not valid YAML"),
    (
        "yaml-two-candidates",
        _tool(ultralytics_yolo, _yaml("names: [a]\ntrain: train.txt\n", "other.yaml")),
        "2 YAML files with 'names' (other.yaml, shelves.yaml)",
    ),
    (
        "yaml-list-line-climbs",
        _tool(ultralytics_yolo, _write("train.txt", "../../secret.png\n")),
        "train.txt:1 '../../secret.png': resolves to",
    ),
    (
        "yolo-label-symlink-outside",
        _tool(roboflow_yolo, _link_out("valid/labels/b.rf.9c2d.txt")),
        "b.rf.9c2d.txt: resolves to",
    ),
    (
        "roboflow-json-symlink",
        _tool(roboflow_coco, _link_out("valid/_annotations.coco.json")),
        "_annotations.coco.json: resolves to",
    ),
    (
        "unknown-layout",
        _tool(lambda r: (r.mkdir(), (r / "notes.txt").write_text("hi"), (r, {}))[-1], lambda s: None),
        "unknown dataset layout: no classes.yaml with images/",
    ),
]


def _to(tmp, make: Callable[[Path], None]):
    src = prodseg_src(tmp)
    make(tmp)
    return ["convert", "--from", "prodseg", src, "--to", tmp / "out", "--to-format", "coco"]


def _limit(value: str) -> Callable[[Path], None]:
    return lambda tmp: os.environ.__setitem__("PRODSEG_MAX_IMAGE_PIXELS", value)


OUTPUT_CASES = [
    ("to-is-a-file", lambda t: _to(t, lambda t: (t / "out").write_text("mine")), "already exists"),
    (
        "to-not-empty",
        lambda t: _to(t, lambda t: (t / "out").mkdir() or (t / "out" / "x").write_text("")),
        "already exists and is not an empty folder",
    ),
    (
        "to-under-a-file",
        lambda t: _to(t, lambda t: (t / "afile").write_text(""))[:-3] + [t / "afile" / "out"],
        "cannot create the output folder",
    ),
    (
        "to-inside-source",
        lambda t: _to(t, lambda t: None)[:-3] + [t / "ds" / "out"],
        "is inside the source folder",
    ),
    (
        "bad-pixel-limit",
        lambda t: _to(t, _limit("lots")),
        "PRODSEG_MAX_IMAGE_PIXELS='lots': expected a positive number",
    ),
    ("zero-pixel-limit", lambda t: _to(t, _limit("0")), "PRODSEG_MAX_IMAGE_PIXELS='0'"),
]


def _run(args: list) -> tuple[int, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.output


@pytest.fixture(autouse=True)
def _restore_limit():
    """Cases may set PRODSEG_MAX_IMAGE_PIXELS while they build their arguments; undo it after."""
    old = os.environ.pop("PRODSEG_MAX_IMAGE_PIXELS", None)
    yield
    os.environ.pop("PRODSEG_MAX_IMAGE_PIXELS", None)
    if old is not None:
        os.environ["PRODSEG_MAX_IMAGE_PIXELS"] = old


ALL_CASES = COCO_CASES + FOLDER_CASES + TOOL_CASES + OUTPUT_CASES


@pytest.mark.parametrize("setup, phrase", [c[1:] for c in ALL_CASES], ids=[c[0] for c in ALL_CASES])
def test_convert_refuses_with_one_line_and_leaves_nothing(tmp_path, setup, phrase: str) -> None:
    args = setup(tmp_path)
    before = {p.name for p in tmp_path.iterdir()}
    code, output = _run(args)
    lines = [ln for ln in output.splitlines() if ln.strip()]
    assert code == 2, output
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    assert phrase in lines[0], output
    assert "Traceback" not in output
    out = Path(str(args[args.index("--to") + 1]))
    if out.name == "out" and "out" not in before:
        assert not out.exists() and not out.is_symlink()
    assert {p.name for p in tmp_path.iterdir()} == before  # no temporary folder left beside it


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_convert_into_read_only_folder(tmp_path) -> None:
    src = prodseg_src(tmp_path)
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o555)
    try:
        code, output = _run(["convert", "--from", "prodseg", src, "--to", tmp_path / "ro" / "out"])
    finally:
        (tmp_path / "ro").chmod(0o755)
    assert code == 2 and output.startswith("error: ") and output.count("\n") == 1, output
    assert list((tmp_path / "ro").iterdir()) == []


# ---- check: problems are exit 1, one line each, then the error line
CHECK_CASES = [
    ("nan-coordinate", "labels/img0.txt", "0 0.1 nan 0.5 0.1 0.5 0.5\n", "found nan"),
    ("inf-coordinate", "labels/img0.txt", "0 0.1 0.1 -inf 0.1 0.5 0.5\n", "found -inf"),
    ("outside-0-1", "labels/img0.txt", "0 0.1 0.1 1.5 0.1 0.5 0.5\n", "normalised to 0..1"),
    ("odd-count", "labels/img0.txt", "0 0.1 0.1 0.5 0.1 0.5\n", "even number (>= 6)"),
    ("class-out-of-range", "labels/img0.txt", "42 0.1 0.1 0.5 0.1 0.5 0.5\n", "class 42 is outside"),
    ("bomb-image", "images/img0.png", png_header(20000, 20000), "is above the limit of 100,000,000"),
    ("bomb-mask", "masks/img1.png", png_header(20000, 20000), "is above the limit"),
    (
        "coco-zero-height",
        "instances.json",
        json.dumps(
            {**valid_coco(), "images": [{"id": 1, "file_name": "img0.png", "height": 0, "width": 64}]}
        ),
        "is not a positive size",
    ),
]


@pytest.mark.parametrize(
    "rel, content, phrase", [c[1:] for c in CHECK_CASES], ids=[c[0] for c in CHECK_CASES]
)
def test_check_reports_problem_and_exits_1(tmp_path, rel: str, content, phrase: str) -> None:
    # Label checks run on a YOLO export (its other problems, such as no masks/, are listed too).
    src = prodseg_src(tmp_path, "yolo") if rel.startswith("labels") else prodseg_src(tmp_path)
    _write(rel, content)(src)
    code, output = _run(["check", src])
    lines = output.strip().splitlines()
    assert code == 1, output
    assert any(phrase in ln and ln.startswith(str(src / rel)) for ln in lines[:-1]), output
    assert lines[-1].startswith(f"error: {src}: ") and "Traceback" not in output


def test_check_bad_pixel_limit_is_one_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PRODSEG_MAX_IMAGE_PIXELS", "-3")
    code, output = _run(["check", prodseg_src(tmp_path)])
    assert code == 2 and output.count("\n") == 1 and "PRODSEG_MAX_IMAGE_PIXELS='-3'" in output


# ---- synth and video: bad arguments are refused before anything is written
SYNTH_CASES = [
    (["synth", "{t}/d", "--size", "0x0"], "each side must be an integer between 16 and 8192"),
    (["synth", "{t}/d", "--size", "-5x10"], "each side must be"),
    (["synth", "{t}/full", "--images", "2", "--size", "32"], "folder is not empty"),
    (["synth", "{t}/afile/d", "--images", "2", "--size", "32"], "cannot create the output folder"),
    (["video", "{t}/v.avi", "--frames", "2"], "synthetic videos are MP4"),
    (["video", "{t}/v.mp4", "--size", "0x10", "--frames", "2"], "sides must be even"),
]


@pytest.mark.parametrize(
    "args, phrase", SYNTH_CASES, ids=[f"{a[0]}-{i}" for i, (a, _) in enumerate(SYNTH_CASES)]
)
def test_synth_and_video_bad_arguments(tmp_path, args: list[str], phrase: str) -> None:
    (tmp_path / "afile").write_text("")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("")
    code, output = _run([a.format(t=tmp_path) for a in args])
    assert code == 2 and output.count("\n") == 1 and output.startswith("error: ") and phrase in output, output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "full"]
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["mine.txt"]
