#!/usr/bin/env python
"""Build what the YOLOv8n-seg throughput check in the README ("YOLOv8n-seg 640²") measures, offline, into OUT:

    yolov8n-seg.onnx          ultralytics export of yolov8n-seg.yaml with nc=9, random weights, 640², opset 17
    yolov8n-seg_fp32.xml      OpenVINO IR (FP32 weights) + sidecar metadata
    yolov8n-seg_int8.onnx     static QDQ INT8 (u8 activations, s8 per-channel weights), calibrated on frames
    shelf720.mp4 + masks/     synthetic 1280x720 shelf video, 120 frames, with per-frame masks

    .venv/bin/python scripts/make_yolo_bench_artifacts.py runs/yolo-bench
    prodseg-bench runs/yolo-bench/shelf720.mp4 --model runs/yolo-bench/yolov8n-seg_int8.onnx \\
        --backend openvino --mode throughput --requests 2 --frames 300 --min-fps 30

Needs the train and export extras (torch, ultralytics, onnx, onnxruntime, openvino).
"""

from __future__ import annotations

import itertools
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
CLASSES = ["shelf", "price_tag", "bottle", "can", "box", "bag", "jar", "gap", "signage"]


def export_onnx(out: Path) -> Path:
    """ultralytics' own ONNX export of a 9-class YOLOv8n-seg (random init)."""
    import ultralytics
    from ultralytics import YOLO

    cfg = Path(ultralytics.__file__).parent / "cfg/models/v8/yolov8-seg.yaml"
    yaml_path = out / "yolov8n-seg.yaml"  # the 'n' in the name selects the nano scale
    yaml_path.write_text(cfg.read_text().replace("nc: 80", f"nc: {len(CLASSES)}"))
    onnx_path = Path(
        YOLO(str(yaml_path), task="segment").export(
            format="onnx", imgsz=640, simplify=True, opset=17, dynamic=False
        )
    )
    if onnx_path.resolve() != (out / "yolov8n-seg.onnx").resolve():
        shutil.move(onnx_path, out / "yolov8n-seg.onnx")
    return out / "yolov8n-seg.onnx"


def to_ir(onnx_path: Path) -> Path:
    import onnx
    import openvino as ov

    from prodseg.metadata import write_sidecar
    from prodseg.runtime.artifact import from_ultralytics

    props = {p.key: p.value for p in onnx.load(str(onnx_path), load_external_data=False).metadata_props}
    xml = onnx_path.with_name("yolov8n-seg_fp32.xml")
    ov.save_model(ov.convert_model(str(onnx_path)), str(xml), compress_to_fp16=False)
    write_sidecar(xml, from_ultralytics(props, str(onnx_path)))
    return xml


def to_int8(onnx_path: Path, video: Path, frames: int = 16) -> Path:
    """Static QDQ quantization calibrated on preprocessed frames of the video; ultralytics metadata kept."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from prodseg.runtime import load
    from prodseg.runtime.sources import open_source

    # the quantizer runs the graph itself, which takes normalised float NCHW: no normalisation in the model
    with load(onnx_path, fuse_preprocess=False) as predictor:
        decoded = itertools.islice(open_source(video), frames)
        feeds = iter([predictor.preprocess(f.image, bgr=True)[0] for f in decoded])

    class Reader(CalibrationDataReader):
        def get_next(self):  # noqa: ANN202 - the ORT interface
            return next(feeds, None)

    out = onnx_path.with_name("yolov8n-seg_int8.onnx")
    quantize_static(
        str(onnx_path),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
    )
    props = onnx.load(str(onnx_path), load_external_data=False).metadata_props
    q = onnx.load(str(out))
    if not q.metadata_props:
        q.metadata_props.extend(props)
    onnx.save(q, str(out))
    return out


def main(out: Path) -> None:
    from prodseg.data.synth import generate_video

    out.mkdir(parents=True, exist_ok=True)
    video = out / "shelf720.mp4"
    if not video.is_file():
        generate_video(video, frames=120, size=(1280, 720), fps=30, seed=1, masks_dir=out / "masks")
    onnx_path = out / "yolov8n-seg.onnx"
    if not onnx_path.is_file():
        export_onnx(out)
    for path in (to_ir(onnx_path), to_int8(onnx_path, video)):
        print(path)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/yolo-bench"))
