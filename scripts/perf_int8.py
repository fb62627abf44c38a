"""INT8 vs float latency and accuracy for DeepLabV3+ MobileNetV2 at 512x512 on this CPU.

    .venv/bin/python scripts/perf_int8.py --checkpoint runs/x/best.pt --data data/shelves

Exports FP32 ONNX, QDQ INT8 ONNX (u8 and s8 activations), OpenVINO FP32 IR, NNCF INT8 IR and an IR
converted from the QDQ ONNX, all at --size, then times `infer` through prodseg.runtime (same feed, same
threads, same run) and scores mIoU on the val split. Without --checkpoint the weights are random and
ΔmIoU means nothing (the report says so).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

from prodseg.data.imageio import read_image, read_mask
from prodseg.data.layout import ShelfDataset
from prodseg.export.calibration import CalibrationSet
from prodseg.export.onnx_fp32 import export_onnx
from prodseg.export.onnx_int8 import quantize_int8
from prodseg.export.openvino_ir import convert_ir, ir_from_qdq, quantize_ir
from prodseg.export.source import ExportSource, load_source
from prodseg.metrics import ConfusionMatrix
from prodseg.runtime import load


def random_source(out: Path) -> ExportSource:
    """A randomly initialised DeepLabV3+ MobileNetV2 saved as a checkpoint, then loaded like any other."""
    from prodseg.config import Config
    from prodseg.data.taxonomy import SHELF10
    from prodseg.train.checkpoint import build_checkpoint, save_checkpoint
    from prodseg.train.models import build_model

    cfg = Config()
    colors = [list(c) for c in SHELF10.colors]
    ckpt = build_checkpoint(build_model(cfg.model), cfg, list(SHELF10.names), colors)
    return load_source(save_checkpoint(out / "random.pt", ckpt))


def artifacts(src: ExportSource, fp32: Path, out: Path, calib: CalibrationSet, method: str) -> list[tuple]:
    """(label, path, backend, runner opts) for every variant measured."""
    u8 = quantize_int8(fp32, out / "model_int8_u8.onnx", calib, src.meta, method, "uint8").path
    s8 = quantize_int8(fp32, out / "model_int8_s8.onnx", calib, src.meta, method, "int8").path
    ir = convert_ir(fp32, out / "openvino", src.meta)
    nncf_ir = quantize_ir(fp32, out / "openvino_int8", calib, src.meta)
    qdq_ir = ir_from_qdq(u8, out / "openvino_int8_qdq", src.meta)
    return [
        ("ORT fp32", fp32, "onnxruntime", {}),
        ("ORT int8 QDQ u8", u8, "onnxruntime", {}),
        ("ORT int8 QDQ s8", s8, "onnxruntime", {}),
        ("OV fp32 IR (f32)", ir, "openvino", {"inference_precision": "f32"}),
        ("OV fp32 IR (runtime default precision)", ir, "openvino", {}),
        ("OV int8 NNCF", nncf_ir, "openvino", {}),
        ("OV int8 from QDQ u8 ONNX", qdq_ir, "openvino", {}),
    ]


def measure(path: Path, backend: str, opts: dict, samples: list, threads: int, runs: int) -> dict:
    """Median/p90 infer latency on one fixed feed, and mIoU over the samples."""
    with load(path, backend=backend, threads=threads, **opts) as pred:
        feed, _ = pred.preprocess(read_image(samples[0].image))
        for _ in range(5):
            pred.infer(feed)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            pred.infer(feed)
            times.append(1000 * (time.perf_counter() - t0))
        cm = ConfusionMatrix(pred.meta.num_classes)
        for s in samples:
            cm.update(read_mask(s.mask), pred.predict(read_image(s.image)).label_map)
    times.sort()
    return {
        "median_ms": statistics.median(times),
        "p90_ms": times[int(0.9 * (len(times) - 1))],
        "miou": cm.scores().miou,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path)
    ap.add_argument("--data", type=Path, required=True, help="labelled dataset (train split calibrates)")
    ap.add_argument("--out", type=Path, default=Path("runs/perf_int8"))
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--calib-images", type=int, default=64)
    ap.add_argument("--val-images", type=int, default=24)
    ap.add_argument("--method", default="minmax", choices=["minmax", "entropy", "percentile"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    src = load_source(args.checkpoint) if args.checkpoint else random_source(args.out)
    src.meta = dataclasses.replace(src.meta, input_size=[args.size, args.size])
    ds = ShelfDataset(args.data)
    samples = ds.split("val")[: args.val_images]
    fp32 = export_onnx(src, args.out / "model.onnx")
    pre = load(fp32, backend="onnxruntime", fuse_preprocess=False)  # the quantizers feed the graph itself
    calib_paths = [ds.sample(s).image for s in ds.split_stems("train")[: args.calib_images]]
    calib = CalibrationSet(calib_paths, lambda rgb: pre.preprocess(rgb)[0])
    rows = []
    for label, path, backend, opts in artifacts(src, fp32, args.out, calib, args.method):
        stats = measure(path, backend, opts, samples, args.threads, args.runs)
        r = {"artifact": label, "path": str(path), **stats}
        rows.append(r)
        print(
            f"{label:36s} median {r['median_ms']:7.1f} ms  p90 {r['p90_ms']:7.1f} ms  "
            f"mIoU {100 * r['miou']:6.2f}",
            flush=True,
        )
    import openvino as ov

    report = {
        "cpu_default_precision": str(ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT")),
        "size": args.size,
        "threads": args.threads,
        "runs": args.runs,
        "method": args.method,
        "calib_images": len(calib),
        "val_images": len(samples),
        "checkpoint": str(args.checkpoint) if args.checkpoint else "random weights (ΔmIoU meaningless)",
        "rows": rows,
    }
    (args.out / "perf_int8.json").write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out / 'perf_int8.json'}")


if __name__ == "__main__":
    main()
