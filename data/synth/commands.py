"""`prodseg-data synth` and `prodseg-data video`: thin click wrappers over the generators."""

from __future__ import annotations

import time
from pathlib import Path

import click

from prodseg.cli import OneLineUsage, handle_errors
from prodseg.data.synth.dataset import SynthStats, generate_dataset, parse_size
from prodseg.data.synth.video import generate_video
from prodseg.errors import BadInput


def parse_wxh(text: str) -> tuple[int, int]:
    """'1280x720' -> (1280, 720) as (W, H); BadInput otherwise."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise BadInput(f"--size '{text}': expected WxH in pixels, e.g. 1280x720") from None
    return w, h


@click.command(cls=OneLineUsage)
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--images", "-n", type=click.IntRange(min=1), default=50, show_default=True, help="How many.")
@click.option("--size", default="512", show_default=True, help="Image size: N (square) or HxW.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same bytes.")
@click.option(
    "--val-fraction",
    type=click.FloatRange(0.0, 1.0, max_open=True),
    default=0.2,
    show_default=True,
    help="Share of images in the val split.",
)
@handle_errors
def synth(out_dir: Path, images: int, size: str, seed: int, val_fraction: float) -> None:
    """Render a synthetic shelf dataset (images, masks, COCO and YOLO-seg instances, splits) into OUT_DIR."""
    stats: list[SynthStats] = []
    root = generate_dataset(out_dir, images, parse_size(size), seed, val_fraction, stats=stats)
    s = stats[0]
    train = len((root / "splits" / "train.txt").read_text().split())
    click.echo(
        f"{root}: {images} images {size} ({train} train, {images - train} val), masks, "
        f"instances.json, labels/, dataset.yaml"
    )
    click.echo(
        f"rendered {s.render_per_s:.1f} images/s; {images / s.total_s:.1f} images/s with file writes "
        f"({s.total_s:.1f}s)"
    )


@click.command(cls=OneLineUsage)
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--frames", type=click.IntRange(min=1), default=90, show_default=True)
@click.option("--size", default="1280x720", show_default=True, help="Frame size WxH.")
@click.option("--fps", type=click.IntRange(1, 240), default=30, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--masks",
    "masks_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write per-frame ground-truth masks here (000000.png, ...).",
)
@handle_errors
def video(out: Path, frames: int, size: str, fps: int, seed: int, masks_dir: Path | None) -> None:
    """Render a synthetic shelf video (camera panning along a shelf) to OUT (.mp4)."""
    t0 = time.perf_counter()
    path = generate_video(out, frames, parse_wxh(size), fps, seed, masks_dir=masks_dir)
    dt = time.perf_counter() - t0
    extra = f", masks in {masks_dir}/" if masks_dir else ""
    click.echo(f"{path}: {frames} frames {size} @ {fps} fps ({path.stat().st_size / 1e6:.1f} MB){extra}")
    click.echo(f"rendered and encoded {frames / dt:.1f} frames/s ({dt:.1f}s)")
