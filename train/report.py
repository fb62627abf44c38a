"""Evaluation report files: overlays, confusion-matrix PNG, per-class IoU chart, report.md, metrics.json."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from prodseg.atomic import ensure_writable_dir, write_bytes, write_json, write_text
from prodseg.data.imageio import write_image
from prodseg.data.taxonomy import IGNORE_INDEX


def colorize(labels: np.ndarray, colors: list[list[int]] | np.ndarray) -> np.ndarray:
    """(H,W) label map -> (H,W,3) uint8 RGB; ignore (255) and unknown labels are black."""
    lut = np.zeros((256, 3), np.uint8)
    palette = np.asarray(colors, np.uint8).reshape(-1, 3)[:IGNORE_INDEX]
    lut[: len(palette)] = palette
    return lut[labels.astype(np.uint8)]


def overlay(
    image: np.ndarray, labels: np.ndarray, colors: list[list[int]] | np.ndarray, alpha: float = 0.5
) -> np.ndarray:
    """Blend class colours over an RGB uint8 image; background (0) and ignore pixels stay unblended."""
    color = colorize(labels, colors).astype(np.float32)
    paint = ((labels > 0) & (labels != IGNORE_INDEX))[..., None]
    mixed = np.where(paint, (1 - alpha) * image.astype(np.float32) + alpha * color, image.astype(np.float32))
    return mixed.round().clip(0, 255).astype(np.uint8)


def sample_panel(
    image: np.ndarray, target: np.ndarray, pred: np.ndarray, colors: list[list[int]] | np.ndarray
) -> np.ndarray:
    """Image | ground-truth overlay | prediction overlay, side by side, with a 2-px white gap."""
    gap = np.full((image.shape[0], 2, 3), 255, np.uint8)
    return np.concatenate(
        [image, gap, overlay(image, target, colors), gap, overlay(image, pred, colors)], axis=1
    )


def denormalize(image: Any, mean: Any, std: Any) -> np.ndarray:
    """A normalised (3,H,W) tensor/array back to (H,W,3) uint8 RGB."""
    arr = np.asarray(image, np.float32).transpose(1, 2, 0)
    arr = arr * np.asarray(std, np.float32) + np.asarray(mean, np.float32)
    return (arr * 255.0).round().clip(0, 255).astype(np.uint8)


def _figure_png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def confusion_png(mat: np.ndarray, names: list[str]) -> bytes:
    """Row-normalised confusion matrix (rows: ground truth) as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = mat.sum(axis=1, keepdims=True)
    norm = np.divide(mat, rows, out=np.zeros(mat.shape, np.float64), where=rows > 0)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * len(names), 0.8 + 0.5 * len(names)))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    for (i, j), v in np.ndenumerate(norm):
        if v >= 0.005:
            ax.text(
                j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v > 0.5 else "black"
            )
    fig.colorbar(im, ax=ax, fraction=0.046)
    data = _figure_png(fig)
    plt.close(fig)
    return data


def iou_bar_png(iou: list[float], names: list[str]) -> bytes:
    """Per-class IoU bar chart (NaN = class absent, drawn as an empty slot) as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = np.nan_to_num(np.asarray(iou, np.float64), nan=0.0)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * len(names), 3.2))
    ax.bar(range(len(names)), values, color="#3b7dd8")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("IoU")
    data = _figure_png(fig)
    plt.close(fig)
    return data


def class_rows(metrics: dict[str, Any], names: list[str]) -> list[tuple[str, float, float]]:
    """(name, IoU, Dice) per class; NaN where the class is absent from both prediction and ground truth."""
    iou, dice = list(metrics["iou"]), list(metrics["dice"])
    return [(n, float(iou[i]), float(dice[i])) for i, n in enumerate(names)]


def _fmt(v: float) -> str:
    return "—" if not np.isfinite(v) else f"{v:.4f}"


def markdown(metrics: dict[str, Any], names: list[str], source: str, split: str, samples: list[str]) -> str:
    """report.md: headline metrics, per-class table, links to the figures and sample overlays."""
    lines = [f"# Evaluation of `{source}`", "", f"Split: `{split}`", "", "| metric | value |", "|---|---|"]
    for key in (
        "miou",
        "mean_dice",
        "pixel_accuracy",
        "map50",
        "map50_95",
        "map50_at_conf",
        "map50_95_at_conf",
    ):
        if key in metrics:
            lines.append(f"| {key} | {_fmt(float(metrics[key]))} |")
    lines += [
        "",
        "Classes absent from both prediction and ground truth (—) are left out of the means.",
        "",
        "| class | IoU | Dice |",
        "|---|---|---|",
    ]
    lines += [f"| {n} | {_fmt(i)} | {_fmt(d)} |" for n, i, d in class_rows(metrics, names)]
    lines += ["", "![confusion matrix](confusion_matrix.png)", "", "![per-class IoU](per_class_iou.png)", ""]
    lines += [f"![{Path(s).stem}]({s})" for s in samples]
    return "\n".join(lines) + "\n"


def write_report(
    out: str | Path,
    metrics: dict[str, Any],
    confusion: np.ndarray,
    names: list[str],
    panels: dict[str, np.ndarray],
    source: str,
    split: str,
) -> Path:
    """Write metrics.json, confusion_matrix.png, per_class_iou.png, samples/*.png and report.md to `out`."""
    out = ensure_writable_dir(out)
    sample_files = []
    for stem, panel in panels.items():
        rel = f"samples/{stem}.png"
        write_image(out / rel, panel)
        sample_files.append(rel)
    write_bytes(out / "confusion_matrix.png", confusion_png(confusion, names))
    write_bytes(out / "per_class_iou.png", iou_bar_png(list(metrics["iou"]), names))
    clean = {k: _jsonable(v) for k, v in metrics.items()}
    write_json(
        out / "metrics.json",
        {
            **clean,
            "class_names": names,
            "confusion_matrix": confusion.tolist(),
            "source": source,
            "split": split,
        },
    )
    return write_text(out / "report.md", markdown(metrics, names, source, split, sample_files))


def _jsonable(v: Any) -> Any:
    if hasattr(v, "tolist"):
        v = v.tolist()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    return v
