"""`--report DIR`: report.md with the comparison table and PNG plots (matplotlib, the `report` extra).

The files are written to a temporary folder and moved in together, report.md last, so a report.md on
disk always has its plots.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prodseg.atomic import atomic_dir, write_text
from prodseg.bench.names import artifact_label
from prodseg.bench.results import ModelResult
from prodseg.bench.table import markdown_table
from prodseg.errors import require

STAGE_ORDER = ("decode", "preprocess", "infer", "postprocess", "sink")


def _label(r: ModelResult) -> str:
    mode = "" if r.mode == "latency" else f" x{r.requests}"
    return f"{r.label or artifact_label(r.artifact)} [{r.backend}{mode}] {Path(r.video).name}"


def _stages(r: ModelResult) -> list[str]:
    return [s for s in STAGE_ORDER if s in r.stages] + [s for s in r.stages if s not in STAGE_ORDER]


def plot_latency_histograms(plt: Any, results: list[ModelResult]) -> Any:
    """One panel per run: the per-frame latency distribution of each stage."""
    fig, axes = plt.subplots(len(results), 1, figsize=(8, 3 * len(results)), squeeze=False)
    for ax, r in zip(axes[:, 0], results, strict=True):
        for stage in _stages(r):
            ax.hist(r.stages[stage].values, bins=40, alpha=0.6, label=stage)
        ax.set(title=_label(r), xlabel="ms per frame", ylabel="frames")
        ax.legend(fontsize="small")
    return fig


def plot_fps_timeline(plt: Any, results: list[ModelResult]) -> Any:
    """Frames per second in each second of the pipelined run."""
    fig, ax = plt.subplots(figsize=(8, 4))
    for r in results:
        if r.fps_timeline:
            t, fps = zip(*r.fps_timeline, strict=True)
            ax.plot(t, fps, marker=".", label=_label(r))
    ax.set(title="FPS over time (end to end)", xlabel="seconds", ylabel="FPS")
    ax.legend(fontsize="small")
    return fig


def plot_stage_bars(plt: Any, results: list[ModelResult]) -> Any:
    """Mean milliseconds per stage, stacked, one bar per run."""
    fig, ax = plt.subplots(figsize=(max(6, 2 * len(results)), 4))
    labels = [_label(r) for r in results]
    bottoms = [0.0] * len(results)
    for stage in STAGE_ORDER:
        heights = [r.stages[stage].mean if stage in r.stages else 0.0 for r in results]
        if any(heights):
            ax.bar(range(len(results)), heights, bottom=bottoms, label=stage)
            bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    ax.set_xticks(range(len(results)), labels, rotation=20, ha="right", fontsize="small")
    ax.set(title="Mean time per stage", ylabel="ms per frame")
    ax.legend(fontsize="small")
    return fig


def plot_accuracy_vs_fps(plt: Any, results: list[ModelResult]) -> Any:
    """mIoU against end-to-end FPS, one point per run."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in results:
        ax.scatter(r.fps_e2e, r.accuracy.miou)  # type: ignore[union-attr]
        ax.annotate(_label(r), (r.fps_e2e, r.accuracy.miou), fontsize="x-small")  # type: ignore[union-attr]
    ax.set(title="Accuracy vs speed", xlabel="FPS end to end", ylabel="mIoU")
    return fig


# File name -> (plot, when it applies): the registry report.md is built from.
PLOTS: dict[str, tuple[Callable[[Any, list[ModelResult]], Any], Callable[[list[ModelResult]], bool]]] = {
    "latency_hist.png": (plot_latency_histograms, lambda rs: True),
    "fps_timeline.png": (plot_fps_timeline, lambda rs: True),
    "stages.png": (plot_stage_bars, lambda rs: True),
    "accuracy_vs_fps.png": (
        plot_accuracy_vs_fps,
        lambda rs: len(rs) > 1 and all(r.accuracy is not None for r in rs),
    ),
}


def write_report(out_dir: str | Path, results: list[ModelResult], document: dict[str, Any]) -> Path:
    """Write the plots and report.md into out_dir; returns report.md's path.

    Everything is written to a temporary folder first: a new out_dir appears complete or not at all,
    and an existing one receives the files only once all exist (report.md last).
    """
    require("matplotlib", "report", "--report plots")
    target = Path(out_dir)
    if not target.is_dir():
        with atomic_dir(target) as tmp:
            _write_files(tmp, results, document)
        return target / "report.md"
    staging = Path(tempfile.mkdtemp(prefix=".report.", suffix=".tmp", dir=target))
    try:
        _write_files(staging, results, document)
        for f in sorted(staging.iterdir(), key=lambda f: f.name == "report.md"):
            os.replace(f, target / f.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target / "report.md"


def _write_files(out: Path, results: list[ModelResult], document: dict[str, Any]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for name, (plot, applies) in PLOTS.items():
        if not applies(results):
            continue
        fig = plot(plt, results)
        try:
            fig.tight_layout()
            fig.savefig(out / name, dpi=100, format="png")
        finally:
            plt.close(fig)
        written.append(name)
    return write_text(out / "report.md", report_markdown(results, document, written))


def report_markdown(results: list[ModelResult], document: dict[str, Any], plots: list[str]) -> str:
    """The text of report.md."""
    m = document["machine"]
    lines = [
        "# prodseg-bench report",
        "",
        f"Measured {document['created']} on {m['cpu_model']} ({m['logical_cores']} logical cores, "
        f"{m['memory_gb']} GB), {m['os']}.",
        "",
        markdown_table(document["results"]),
        "",
        "FPS e2e: frames / wall time of the pipelined run (decode, preprocess, infer, postprocess). "
        "FPS model: inference alone on preprocessed frames of the same video. Latency: per frame through "
        "the pipeline. Warm-up frames excluded. Flicker: predicted label change rate between consecutive "
        "frames minus the ground truth's, clamped at 0.",
        "",
        "## Per-stage latency (ms)",
        "",
        "| run | stage | min | p50 | p90 | p99 | max | mean |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for stage in _stages(r):
            s = r.stages[stage]
            lines.append(
                f"| {_label(r)} | {stage} | {s.min:.2f} | {s.p50:.2f} | {s.p90:.2f} | {s.p99:.2f} "
                f"| {s.max:.2f} | {s.mean:.2f} |"
            )
    lines += ["", *per_class_iou(results)]
    lines += [f"![{name[:-4]}]({name})\n" for name in plots]
    return "\n".join(lines) + "\n"


def per_class_iou(results: list[ModelResult]) -> list[str]:
    """Per-class IoU of every run with ground truth, in percent, under the truth's class names."""
    scored = [r for r in results if r.accuracy is not None and r.accuracy.class_names]
    if not scored:
        return []
    names = scored[0].accuracy.class_names  # type: ignore[union-attr]
    lines = ["## Per-class IoU (%)", "", "| run | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for r in scored:
        acc = r.accuracy
        assert acc is not None
        cells = ["—" if math.isnan(v) else f"{100 * v:.1f}" for v in acc.iou]
        lines.append(f"| {_label(r)} | " + " | ".join(cells) + " |")
    return [*lines, "", "— = absent from both prediction and ground truth.", ""]
