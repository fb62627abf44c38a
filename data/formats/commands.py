"""`prodseg-data convert` and `prodseg-data check`: thin click wrappers over convert() and check_dataset()."""

from __future__ import annotations

from pathlib import Path

import click

from prodseg.cli import OneLineUsage, handle_errors
from prodseg.data.formats.coco import SEGMENTERS
from prodseg.data.formats.convert import AUTO, READERS, WRITERS
from prodseg.data.formats.importers import CROWD_MODES, ImportOptions
from prodseg.errors import GateFailed


@click.command(cls=OneLineUsage)
@click.option(
    "--from",
    "from_fmt",
    default=AUTO,
    show_default=True,
    type=click.Choice([AUTO, *READERS]),
    help="Format of SRC; 'auto' tells it from the files present.",
)
@click.argument("src", type=click.Path(path_type=Path))
@click.option(
    "--to", "dst", required=True, type=click.Path(path_type=Path), help="New (or empty) output folder."
)
@click.option(
    "--to-format",
    "to_fmt",
    default="prodseg",
    show_default=True,
    type=click.Choice(list(WRITERS)),
    help="Format written into --to.",
)
@click.option(
    "--coco-encoding",
    default="rle",
    show_default=True,
    type=click.Choice(list(SEGMENTERS)),
    help="COCO masks as exact RLE or approximate polygons (with --to-format coco).",
)
@click.option(
    "--crowd",
    default="auto",
    show_default=True,
    type=click.Choice(list(CROWD_MODES)),
    help="What COCO masks marked iscrowd=1 become: objects (CVAT's masks) or ignore regions; "
    "auto: objects, except in COCO files prodseg wrote.",
)
@click.option(
    "--classes",
    "classes_file",
    type=click.Path(path_type=Path),
    default=None,
    help="Class names for sources without a class list (LabelMe): one per line, or a classes.yaml.",
)
@handle_errors
def convert(
    from_fmt: str,
    src: Path,
    dst: Path,
    to_fmt: str,
    coco_encoding: str,
    crowd: str,
    classes_file: Path | None,
) -> None:
    """Convert dataset SRC (COCO, CVAT, Roboflow, ultralytics, LabelMe, colour masks, prodseg) into --to."""
    from prodseg.data.formats.convert import convert as run_convert
    from prodseg.data.formats.detect import detect

    fmt = detect(src) if from_fmt == AUTO else from_fmt
    out = run_convert(src, dst, fmt, to_fmt, coco_encoding, ImportOptions(crowd, classes_file))
    click.echo(f"wrote {to_fmt} dataset {out} from {fmt} {src}")


@click.command(cls=OneLineUsage)
@click.argument("root", type=click.Path(path_type=Path))
@handle_errors
def check(root: Path) -> None:
    """List every problem of dataset folder ROOT; exit 1 when there is any, 2 when ROOT is missing."""
    from prodseg.data.check import check_dataset, summary

    problems = check_dataset(root)
    for p in problems:
        click.echo(str(p))
    counts = ", ".join(f"{k} {v}" for k, v in summary(root).items())
    if problems:
        raise GateFailed(f"{root}: {len(problems)} problem(s) ({counts})")
    click.echo(f"ok: {root} ({counts})")
