"""`make demo`: the whole pipeline on the embedded synthetic default, offline.

synthetic shelves + a 720p shelf video with masks -> train a small model -> export ONNX, OpenVINO and
INT8 with verification -> benchmark every artifact on the video with gates -> runs/demo/report.md.
Each step is skipped when its output already exists, so a second run reuses the first one's work.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

DEMO = Path(os.environ.get("PRODSEG_DEMO_DIR", "runs/demo"))
BIN = Path(sys.executable).parent


def step(title: str, done: Path | None, argv: list[str]) -> None:
    """Run one CLI step unless `done` exists; stop the demo with the step's exit code on failure."""
    if done is not None and done.exists():
        print(f"== {title}: reusing {done}")
        return
    print(f"== {title}\n$ {' '.join(argv)}", flush=True)
    t0 = time.perf_counter()
    rc = subprocess.call([str(BIN / argv[0]), *argv[1:]])
    if rc != 0:
        print(f"demo: step '{title}' failed with exit code {rc}", file=sys.stderr)
        sys.exit(rc)
    print(f"   ({time.perf_counter() - t0:.0f} s)", flush=True)


def latest_checkpoint(train_dir: Path) -> Path | None:
    """best.pt of the newest run folder prodseg-train made under train_dir (None before training)."""
    runs = sorted(train_dir.glob("*/best.pt"), key=lambda p: p.stat().st_mtime)
    return runs[-1] if runs else None


def main() -> None:
    data, video, masks = DEMO / "data", DEMO / "shelf_720p.mp4", DEMO / "shelf_720p_masks"
    train_dir, export_dir = DEMO / "train", DEMO / "export"
    step(
        "synthetic shelf dataset",
        data / "splits" / "val.txt",
        ["prodseg-data", "synth", str(data), "--images", "160", "--size", "192", "--seed", "0"],
    )
    step(
        "synthetic 720p shelf video with ground-truth masks",
        video,
        [
            "prodseg-data",
            "video",
            str(video),
            "--frames",
            "150",
            "--size",
            "1280x720",
            "--fps",
            "30",
            "--seed",
            "1",
            "--masks",
            str(masks),
        ],
    )
    step("prodseg-data check", DEMO / ".checked", ["prodseg-data", "check", str(data)])
    (DEMO / ".checked").touch()
    step(
        "train DeepLabV3+ (fast CPU config)",
        latest_checkpoint(train_dir),
        ["prodseg-train", "--config", "fast_cpu", "--data", str(data), "--out", str(train_dir)],
    )
    checkpoint = latest_checkpoint(train_dir)
    assert checkpoint is not None, f"prodseg-train wrote no best.pt under {train_dir}"
    step(
        "export ONNX, OpenVINO, INT8 with verification",
        export_dir / "export_manifest.json",
        [
            "prodseg-export",
            str(checkpoint),
            "--out",
            str(export_dir),
            "--onnx",
            "--openvino",
            "--int8",
            "--calib-data",
            str(data),
        ],
    )
    artifacts = sorted(export_dir.glob("*.onnx")) + sorted(export_dir.glob("*/model.xml"))
    models = [a for p in artifacts for a in ("--model", str(p))]
    step(
        "benchmark every artifact on the video",
        DEMO / "report.md",
        [
            "prodseg-bench",
            str(video),
            *models,
            "--gt-masks",
            str(masks),
            "--warmup",
            "5",
            "--min-fps",
            "5",
            "--json",
            str(DEMO / "bench.json"),
            "--report",
            str(DEMO),
        ],
    )
    print(f"\ndemo complete: {DEMO / 'report.md'}")


if __name__ == "__main__":
    main()
