"""`prodseg-eval`: score a checkpoint, an exported artifact or saved label PNGs; write a report."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table

from prodseg.atomic import check_output_path
from prodseg.cli import OneLineUsage, handle_errors, setup_logging
from prodseg.config import device_problem, split_problem
from prodseg.errors import BadInput
from prodseg.runtime.model_options import ModelFlags, ModelSpec, model_options

if TYPE_CHECKING:
    from prodseg.train.evaluate import EvalResult


def class_table(result: EvalResult) -> Table:
    """The per-class IoU/Dice table (rich)."""
    from prodseg.train.report import class_rows

    table = Table(title="per-class scores", caption="— = absent from both prediction and ground truth")
    for col in ("class", "IoU", "Dice"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for name, iou, dice in class_rows(result.metrics, result.class_names):
        table.add_row(name, *("—" if math.isnan(v) else f"{v:.4f}" for v in (iou, dice)))
    return table


@click.command(cls=OneLineUsage, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--model", "model", help="A best.pt/last.pt from prodseg-train, or an exported artifact.")
@click.option(
    "--predictions", type=click.Path(), help="Score saved <stem>.png label maps instead of a model."
)
@click.option("--data", help="Dataset folder with images/, masks/ and splits/.")
@click.option(
    "--gt",
    "gt",
    type=click.Path(),
    help="With --predictions: a plain folder of ground-truth <stem>.png masks (instead of --data).",
)
@click.option(
    "--classes",
    "classes_file",
    type=click.Path(),
    help="classes.yaml for --gt masks [default: the --gt folder's classes.yaml].",
)
@click.option(
    "--class-map",
    "class_map_file",
    type=click.Path(),
    help="YAML mapping model class names to the data's, when they differ.",
)
@click.option("--split", default="val", show_default=True, help="Split to score (train, val, test or all).")
@click.option(
    "--report", "report_dir", type=click.Path(), help="Write report.md, metrics.json and figures here."
)
@click.option("--samples", default=4, show_default=True, help="Sample overlays in the report.")
@click.option("--device", default="cpu", show_default=True, help="Device for checkpoints (cpu, cuda).")
@model_options(skip=("--classes",))  # --classes names the --gt classes.yaml here
@click.option("-v", "--verbose", is_flag=True)
@handle_errors
def main(
    model: str | None,
    predictions: str | None,
    data: str | None,
    gt: str | None,
    classes_file: str | None,
    class_map_file: str | None,
    split: str,
    report_dir: str | None,
    samples: int,
    device: str,
    verbose: bool,
    model_flags: ModelFlags,
) -> None:
    """Evaluate segmentation on a dataset split: mIoU, Dice, pixel accuracy, per-class table, report.

    A model exported elsewhere without prodseg metadata is described with the model flags (--task,
    --names, ...), as for prodseg-predict and prodseg-bench.
    """
    setup_logging(verbose)
    from prodseg.classes import read_class_map
    from prodseg.train.evaluate import evaluate_folders, evaluate_split

    spec = model_flags.spec()
    for option, value, problem in (
        ("--split", split, split_problem(split)),
        ("--device", device, device_problem(device)),
    ):
        if problem:
            raise BadInput(f"{option} {value}: {problem}")
    if report_dir:
        check_output_path(report_dir, "--report", folder=True)
    if spec != ModelSpec() and (model is None or predictions is not None):
        given = ", ".join(spec.given(tuple(f.name for f in dataclasses.fields(ModelSpec))))
        raise BadInput(f"{given}: describe a --model; drop them with --predictions (saved label maps)")
    if spec.save_card is not None:
        check_output_path(spec.save_card, "--save-card")
    class_map = read_class_map(class_map_file) if class_map_file else None
    if gt is not None and predictions is not None and data is None and model is None:
        result = evaluate_folders(predictions, gt, classes_file, samples, class_map)
    elif data is not None and gt is None:
        predictor = _predictor(model, predictions, device, spec)
        result = evaluate_split(predictor, data, split, samples, class_map)
        if spec.save_card is not None:
            from prodseg.runtime.model_options import save_card

            save_card(spec.save_card, predictor.runner.meta, Path(str(model)))
    else:
        raise BadInput(
            "give --data DATASET with --model or --predictions, or --predictions DIR with "
            "--gt DIR (plain folders of masks)"
        )
    console = Console()
    console.print(class_table(result))
    m = result.metrics
    click.echo(
        f"mIoU {m['miou']:.4f}  mean Dice {m['mean_dice']:.4f}  pixel accuracy {m['pixel_accuracy']:.4f}"
    )
    if "map50" in m:
        click.echo(
            f"mask mAP50 {m['map50']:.4f}  mAP50-95 {m['map50_95']:.4f}  (all detections down to "
            "confidence 0.001, max 300 per image)"
        )
    if "map50_at_conf" in m:
        click.echo(
            f"mask mAP50 {m['map50_at_conf']:.4f}  mAP50-95 {m['map50_95_at_conf']:.4f}  "
            "(at the model's confidence_threshold)"
        )
    if report_dir:
        write(result, Path(report_dir), str(model or predictions), split)
        click.echo(f"report: {Path(report_dir) / 'report.md'}")


def _predictor(model: str | None, predictions: str | None, device: str, spec: ModelSpec) -> Any:
    """The evaluate module's predictor; model flags (a ModelSpec) go to prodseg.runtime.load."""
    from prodseg.train.evaluate import load_label_maps

    return load_label_maps(model, predictions, device, spec=spec)


def write(result: EvalResult, out: Path, source: str, split: str) -> None:
    """Render sample overlays and write the report folder."""
    from prodseg.train.report import sample_panel, write_report

    panels = {
        stem: sample_panel(img, tgt, pred, result.class_colors)
        for stem, (img, tgt, pred) in result.samples.items()
    }
    write_report(out, result.metrics, result.confusion, result.class_names, panels, source, split)
