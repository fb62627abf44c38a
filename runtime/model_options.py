"""What a user states about a model on the command line, shared by prodseg-predict, -bench and -eval.

`@model_options` adds the flags once: --task, --names, --input-size, --mean, --std, --resize (what
prodseg cannot read from a model without prodseg metadata), --conf, --iou, --max-det, --classes
(YOLO-seg post-processing) and --save-card. The command receives them as one `model_flags` argument
(raw text) and calls `.spec()` inside its error handling, so a bad value is one `error:` line.
`resolve_metadata` turns a ModelSpec into the ArtifactMetadata the runtime uses, in one place.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from prodseg.errors import BadInput
from prodseg.metadata import ArtifactMetadata, sidecar_path
from prodseg.runtime.artifact import missing_metadata
from prodseg.runtime.facts import OutputLayout

log = logging.getLogger("prodseg.runtime")

# --task value -> metadata output_kind, and the defaults a model of that kind gets.
TASKS = {"semantic": "semantic_logits", "yolo-seg": "yolo_seg"}
KIND_TASKS = {kind: task for task, kind in TASKS.items()}
KIND_DEFAULTS: dict[str, dict[str, Any]] = {
    "semantic_logits": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "resize": "resize"},
    "yolo_seg": {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "resize": "letterbox"},
}
RESIZE_MODES = {"stretch": "resize", "letterbox": "letterbox"}  # --resize value -> metadata resize
STRIDE = 32
DESCRIBE = ("task", "names", "input_size", "mean", "std", "resize")  # flags that describe the model
YOLO_ONLY = ("conf", "iou", "max_det")


@dataclass(frozen=True)
class ModelSpec:
    """Parsed flags; None = not given."""

    task: str | None = None  # metadata output_kind
    names: list[str] | None = None
    colors: list[list[int]] | None = None  # from a classes.yaml given to --names
    input_size: tuple[int, int] | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    resize: str | None = None  # metadata resize mode
    conf: float | None = None
    iou: float | None = None
    max_det: int | None = None
    classes: list[str] | None = None
    save_card: Path | None = None

    def given(self, names: tuple[str, ...] = DESCRIBE) -> list[str]:
        """The flags among `names` that were given, as --flag-names."""
        return ["--" + n.replace("_", "-") for n in names if getattr(self, n) is not None]


# --- parsing: text -> values, each failure a BadInput naming the flag and value ---


def _floats(flag: str, text: str, count: int) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != count or not all(math.isfinite(v) for v in values):
        raise BadInput(f"{flag} {text}: give {count} comma-separated numbers, e.g. 0.485,0.456,0.406")
    return values


def parse_input_size(text: str) -> tuple[int, int]:
    """'HxW' or 'N' (square) -> (H, W), both positive."""
    parts = text.lower().replace("x", ",").split(",")
    if not all(p.strip().isdigit() for p in parts) or len(parts) not in (1, 2):
        raise BadInput(f"--input-size {text}: give HxW in pixels, e.g. 480x640 (or one number for a square)")
    h, w = (int(parts[0]),) * 2 if len(parts) == 1 else (int(parts[0]), int(parts[1]))
    if h < 1 or w < 1 or max(h, w) > 16384:
        raise BadInput(f"--input-size {text}: height and width must be from 1 to 16384 pixels")
    return h, w


def _unit(flag: str, text: str) -> float:
    value = _floats(flag, text, 1)[0]
    if not 0 <= value <= 1:
        raise BadInput(f"{flag} {text}: give a number from 0 to 1")
    return value


def _max_det(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise BadInput(f"--max-det {text}: give a whole number of detections, at least 1")
    return int(text)


def _names_file(path: Path) -> tuple[list[str], list[list[int]] | None]:
    """Names (and colours) from a prodseg classes.yaml, an ultralytics data.yaml or a YAML list."""
    from prodseg.data.taxonomy import ClassList
    from prodseg.yamlio import read_yaml

    doc = read_yaml(path, "--names file")
    names = doc.get("names") if isinstance(doc, dict) else doc
    if isinstance(names, dict):  # ultralytics: {0: person, 1: bicycle}
        names = [names[k] for k in sorted(names)]
    if not isinstance(names, list) or not names:
        raise BadInput(f"--names {path}: expected 'names: [...]' (a classes.yaml or data.yaml) or a list")
    colors = doc.get("colors") if isinstance(doc, dict) else None
    if colors:
        classes = ClassList.from_dict({"names": names, "colors": colors}, f"--names {path}")
        return list(classes.names), [list(c) for c in classes.colors]
    return [str(n) for n in names], None


def parse_names(text: str) -> tuple[list[str], list[list[int]] | None]:
    """A comma list (`a,b,c`) or a YAML file: (names, colours or None)."""
    if text.lower().endswith((".yaml", ".yml")) or Path(text).is_file():
        return _names_file(Path(text))
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise BadInput(
            f"--names {text}: give comma-separated class names without empty ones, or a classes.yaml path"
        )
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise BadInput(f"--names {text}: '{duplicate}' appears twice; class names must be unique")
    return names, None


def _choice(flag: str, text: str, choices: dict[str, str]) -> str:
    if text not in choices:
        raise BadInput(f"{flag} {text}: choose one of {', '.join(choices)}")
    return choices[text]


@dataclass
class ModelFlags:
    """The flags as typed; `spec()` parses them (BadInput on a bad value)."""

    raw: dict[str, Any] = field(default_factory=dict)

    def spec(self) -> ModelSpec:
        r = {k: v for k, v in self.raw.items() if v is not None}
        names, colors = parse_names(r["names"]) if "names" in r else (None, None)
        return ModelSpec(
            task=_choice("--task", r["task"], TASKS) if "task" in r else None,
            names=names,
            colors=colors,
            input_size=parse_input_size(r["input_size"]) if "input_size" in r else None,
            mean=_floats("--mean", r["mean"], 3) if "mean" in r else None,
            std=_std(r["std"]) if "std" in r else None,
            resize=_choice("--resize", r["resize"], RESIZE_MODES) if "resize" in r else None,
            conf=_unit("--conf", r["conf"]) if "conf" in r else None,
            iou=_unit("--iou", r["iou"]) if "iou" in r else None,
            max_det=_max_det(r["max_det"]) if "max_det" in r else None,
            classes=_classes(r["classes"]) if "classes" in r else None,
            save_card=Path(r["save_card"]) if "save_card" in r else None,
        )


def _std(text: str) -> list[float]:
    values = _floats("--std", text, 3)
    if min(values) <= 0:
        raise BadInput(f"--std {text}: every value must be > 0 (inputs are divided by it)")
    return values


def _classes(text: str) -> list[str]:
    tokens = [t.strip() for t in text.split(",")]
    if not all(tokens):
        raise BadInput(f"--classes {text}: give comma-separated class names or ids, e.g. bottle,can or 3,4")
    return tokens


# name, help; every option is text parsed by ModelFlags.spec so that errors read the same everywhere.
MODEL_OPTIONS: tuple[tuple[str, str], ...] = (
    ("--task", "Model kind when it has no prodseg metadata: semantic or yolo-seg."),
    ("--names", "Class names: a comma list (a,b,c) or a classes.yaml / data.yaml path."),
    ("--input-size", "Model input HxW (needed for dynamic shapes; default the model's static shape)."),
    ("--mean", "Input mean, 3 comma floats on 0..1 RGB [default: ImageNet (semantic), 0 (YOLO)]."),
    ("--std", "Input std, 3 comma floats [default: ImageNet (semantic), 1 (YOLO)]."),
    (
        "--resize",
        "How frames fit the input: stretch or letterbox [default: stretch (semantic), letterbox (YOLO)].",
    ),
    ("--conf", "YOLO-seg: confidence threshold 0..1 [default: the model's metadata]."),
    ("--iou", "YOLO-seg: NMS IoU threshold 0..1 [default: the model's metadata]."),
    ("--max-det", "YOLO-seg: most instances per frame [default: the model's metadata]."),
    ("--classes", "Keep only these classes (comma list of names or class ids) in the output."),
    ("--save-card", "Write what these flags say about the model as its metadata card (JSON) to FILE."),
)


def model_options(fn: Callable[..., Any] | None = None, *, skip: tuple[str, ...] = ()) -> Any:
    """Click decorator: add the model flags; the command gets them as `model_flags: ModelFlags`.

    skip: flags a command leaves out because it uses the name otherwise (prodseg-eval's --classes).
    """
    options = [(flag, text) for flag, text in MODEL_OPTIONS if flag not in skip]
    keys = [flag[2:].replace("-", "_") for flag, _ in options]

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            raw = {k: kwargs.pop(k) for k in keys}
            return fn(*args, model_flags=ModelFlags(raw), **kwargs)

        for flag, text in reversed(options):
            wrapper = click.option(
                flag, default=None, metavar="FILE" if flag == "--save-card" else None, help=text
            )(wrapper)
        return wrapper

    return decorate(fn) if fn is not None else decorate


# --- --precision and --channels-last: the torch runner's options, and OpenVINO's inference precision ---

# backend -> (its runner option for --precision, the option's spelling of each choice)
PRECISION_OPTION: dict[str, tuple[str, dict[str, str]]] = {
    "torch": ("precision", {"fp32": "fp32", "fp16": "fp16", "bf16": "bf16"}),
    "openvino": ("inference_precision", {"fp32": "f32", "fp16": "f16", "bf16": "bf16"}),
}
PRECISIONS = tuple(PRECISION_OPTION["torch"][1])  # --precision's choices, in prodseg's spelling
FLAG_BACKENDS = {"precision": tuple(PRECISION_OPTION), "channels_last": ("torch",)}


def precision_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Click decorator: --precision and --channels-last, as `precision_opts: dict` (flag name -> value)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        precision, channels_last = kwargs.pop("precision"), kwargs.pop("channels_last")
        opts = {
            k: v
            for k, v in (("precision", precision), ("channels_last", channels_last or None))
            if v is not None
        }
        return fn(*args, precision_opts=opts, **kwargs)

    wrapper = click.option(
        "--precision",
        type=click.Choice(PRECISIONS),
        default=None,
        help="Checkpoints (.pt): autocast precision [default: fp32]. OpenVINO: inference precision "
        "[default: OpenVINO's for the device, bf16 on CPUs with native bf16].",
    )(wrapper)
    return click.option(
        "--channels-last", is_flag=True, help="Checkpoints (.pt): channels-last (NHWC) memory format."
    )(wrapper)


def backend_options(precision_opts: dict[str, Any], backend: str) -> dict[str, Any]:
    """--precision/--channels-last as `backend`'s runner options ({} for a backend they do not apply to)."""
    opts: dict[str, Any] = {}
    if "precision" in precision_opts and backend in PRECISION_OPTION:
        key, spelling = PRECISION_OPTION[backend]
        opts[key] = spelling[precision_opts["precision"]]
    if precision_opts.get("channels_last") and backend in FLAG_BACKENDS["channels_last"]:
        opts["channels_last"] = True
    return opts


def check_precision_opts(precision_opts: dict[str, Any], backends: list[str]) -> None:
    """BadInput when --precision/--channels-last are given but no run uses a backend they apply to."""
    for flag in precision_opts:
        if not set(FLAG_BACKENDS[flag]) & set(backends):
            where = " and ".join(FLAG_BACKENDS[flag])
            raise BadInput(
                f"--{flag.replace('_', '-')}: applies to {where} runs only (.pt checkpoints run on torch); "
                f"drop it for {', '.join(sorted(set(backends)))} models"
            )


# --- flags -> metadata, in one function ---


def _class_names(spec: ModelSpec, kind: str) -> list[str]:
    """Names as prodseg numbers classes: YOLO-seg gets background at 0 (ultralytics cls c -> c + 1)."""
    names = list(spec.names or [])
    return names if kind != "yolo_seg" or (names and names[0] == "background") else ["background", *names]


def _foreign(spec: ModelSpec, static_hw: tuple[int, int] | None, source: str, path: Path) -> ArtifactMetadata:
    """Metadata for a model without any, from the flags and the task's defaults."""
    from prodseg.data.taxonomy import default_colors

    if spec.task is None or spec.names is None:
        raise missing_metadata(path)
    size = spec.input_size or static_hw
    if size is None:
        raise BadInput(
            f"{source}: has dynamic input height/width and no metadata; give --input-size HxW "
            "(the size it was trained at, e.g. 640x640)"
        )
    names = _class_names(spec, spec.task)
    colors = [list(c) for c in default_colors(len(names))]
    return ArtifactMetadata(
        arch="external",
        class_names=names,
        class_colors=colors,
        input_size=list(size),
        output_kind=spec.task,
        prodseg_version="",
        extra={"source": "command line", "stride": STRIDE},
        **KIND_DEFAULTS[spec.task],
    )


def _overridden(meta: ArtifactMetadata, spec: ModelSpec) -> ArtifactMetadata:
    """`meta` with every field the flags give replaced."""
    kind = spec.task or meta.output_kind
    changes: dict[str, Any] = {"output_kind": kind}
    if spec.task is not None and spec.task != meta.output_kind:
        changes.update(KIND_DEFAULTS[kind])  # another kind of model: its defaults, not the old kind's
    if spec.names is not None:
        from prodseg.data.taxonomy import default_colors

        names = _class_names(spec, kind)
        colors = spec.colors if spec.colors and len(spec.colors) == len(names) else default_colors(len(names))
        changes.update(class_names=names, class_colors=[list(c) for c in colors])
    for name, value in (
        ("input_size", spec.input_size),
        ("mean", spec.mean),
        ("std", spec.std),
        ("resize", spec.resize),
        ("confidence_threshold", spec.conf),
        ("iou_threshold", spec.iou),
        ("max_det", spec.max_det),
    ):
        if value is not None:
            changes[name] = list(value) if isinstance(value, tuple) else value
    return dataclasses.replace(meta, **changes)


def _check(
    meta: ArtifactMetadata,
    spec: ModelSpec,
    layout: OutputLayout | None,
    static_hw: tuple[int, int] | None,
    source: str,
) -> None:
    """The resolved metadata against the model: kind, class count, input size; flags that cannot act."""
    if layout is not None and layout.kind != meta.output_kind:
        raise BadInput(
            f"{source}: its outputs are those of a {KIND_TASKS[layout.kind]} model, not "
            f"{KIND_TASKS[meta.output_kind]}; pass --task {KIND_TASKS[layout.kind]}"
        )
    if layout is not None and layout.num_classes is not None:
        expected = layout.num_classes + (1 if meta.output_kind == "yolo_seg" else 0)
        if meta.num_classes != expected:
            where = (
                f"--names gives {len(spec.names)} names"
                if spec.names
                else f"its metadata lists {meta.num_classes} classes"
            )
            raise BadInput(
                f"{source}: {where} but the model outputs {layout.num_classes} classes; give "
                f"{layout.num_classes} names"
            )
    if spec.input_size is not None and static_hw is not None and tuple(spec.input_size) != static_hw:
        h, w = static_hw
        raise BadInput(
            f"--input-size {spec.input_size[0]}x{spec.input_size[1]}: {source} takes a fixed "
            f"{h}x{w} input; drop --input-size or give {h}x{w}"
        )
    if spec.input_size is not None and static_hw is None and any(v % STRIDE for v in spec.input_size):
        raise BadInput(
            f"--input-size {spec.input_size[0]}x{spec.input_size[1]}: a dynamic model needs "
            f"multiples of {STRIDE}"
        )
    unused = spec.given(YOLO_ONLY)
    if unused and meta.output_kind != "yolo_seg":
        raise BadInput(
            f"{', '.join(unused)}: apply to YOLO-seg models; {source} is a semantic model, drop them"
        )


def resolve_metadata(
    found: ArtifactMetadata | None,
    spec: ModelSpec,
    layout: OutputLayout | None,
    static_hw: tuple[int, int] | None,
    path: Path,
) -> ArtifactMetadata:
    """The metadata a run uses: the model's own (or, without any, the flags') with the flags applied.

    Flags given for a model that has metadata override it, and one info line says which.
    """
    source = str(path)
    base = found if found is not None else _foreign(spec, static_hw, source, path)
    meta = _overridden(base, spec)
    _check(meta, spec, layout, static_hw, source)
    given = spec.given(DESCRIBE + YOLO_ONLY)
    if found is not None and given:
        log.info("%s: %s override the model's own metadata", path.name, ", ".join(given))
    return meta


def class_ids(meta: ArtifactMetadata, tokens: list[str] | None) -> frozenset[int] | None:
    """--classes (names or ids, as in predictions' class_id) -> class ids; None keeps every class."""
    if tokens is None:
        return None
    names = list(meta.class_names)
    ids = set()
    for token in tokens:
        if token.isdigit() and int(token) < len(names):
            ids.add(int(token))
        elif token in names:
            ids.add(names.index(token))
        else:
            shown = ", ".join(names[:12]) + (f" ... ({len(names)} classes)" if len(names) > 12 else "")
            raise BadInput(
                f"--classes {token}: not a class of this model; choose names from {shown} "
                f"or ids 0..{len(names) - 1}"
            )
    return frozenset(ids)


def save_card(target: Path, meta: ArtifactMetadata, model: Path) -> Path:
    """Write `meta` as the model's metadata card (the sidecar JSON format); note where runs look for it."""
    from prodseg.atomic import write_json

    path = write_json(target, meta.to_dict())
    if Path(target).resolve() != sidecar_path(model).resolve():
        log.info("wrote %s; later runs read it automatically only as %s", target, sidecar_path(model))
    return path
