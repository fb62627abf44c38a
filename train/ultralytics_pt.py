"""Read ultralytics `.pt` checkpoints (`yolov8n-seg.pt`, `best.pt`) without running code from the file.

ultralytics pickles whole model objects, so a plain `torch.load` would import and call whatever the file
names. Here the file is read with `torch.load(weights_only=True)` and an explicit allow-list in which every
model-layer class ultralytics or torch.nn pickles is replaced by an inert stand-in: nothing from those
modules is imported or executed, the stand-ins only keep the pickled state. From it come the tensors (the
model's state dict, as `nn.Module.state_dict()` would name them), the class names and the model YAML.

Allowed, by the pickled global's name:
- classes under `ultralytics.nn.modules`, `ultralytics.nn.tasks` and `torch.nn.modules` (layers and
  models) and ultralytics' argument namespaces: inert stand-ins;
- `numpy` scalars and dtypes of numeric kinds (training metrics), `pathlib` paths (as strings) and
  `builtins.getattr` (ultralytics pickles bound `forward` methods; the stand-in returns a placeholder);
- everything `torch.load(weights_only=True)` allows by itself (tensors, containers, primitive types).
Any other global refuses the file with BadInput naming it.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from prodseg.errors import BadInput

# A pickled global `module.Name` whose module is one of these (or below them) becomes an inert stand-in.
_STANDIN_MODULES = ("ultralytics.nn.modules", "ultralytics.nn.tasks", "torch.nn.modules")
_NAMESPACES = {
    "ultralytics.utils.IterableSimpleNamespace",
    "ultralytics.yolo.utils.IterableSimpleNamespace",  # before ultralytics 8.0.44
    "types.SimpleNamespace",
}
_IDENTIFIER_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")


class Inert:
    """Stands in for an allow-listed class: keeps the pickled arguments and state, runs nothing else."""

    pickled_name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> Inert:
        obj = super().__new__(cls)
        obj.__dict__["_args"] = args
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.__dict__["_args"] = args

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict | type(None)):
            state = {**(state[0] or {}), **(state[1] or {})}  # (dict state, slot state)
        self.__dict__["_state"] = state if isinstance(state, dict) else {"_value": state}

    @property
    def state(self) -> dict[str, Any]:
        return self.__dict__.get("_state", {})


class _Placeholder:
    """What the allow-listed `getattr` returns: an attribute of a stand-in is never looked up."""


def _getattr_standin(obj: Any, name: str, *default: Any) -> _Placeholder:
    return _Placeholder()


_NUMERIC_KINDS = set("biufc?")


def _numpy_dtype(spec: Any, *args: Any) -> np.dtype:
    dtype = np.dtype(spec) if isinstance(spec, str) else None
    if dtype is None or dtype.kind not in _NUMERIC_KINDS:
        raise pickle.UnpicklingError(f"numpy dtype {spec!r} is not a numeric type")
    return dtype


def _numpy_scalar(dtype: Any, data: Any = None) -> Any:
    if not isinstance(dtype, np.dtype) or dtype.kind not in _NUMERIC_KINDS or not isinstance(data, bytes):
        raise pickle.UnpicklingError("only numeric numpy scalars are read from a checkpoint")
    return np.frombuffer(data, dtype=dtype, count=1)[0].item()


def _path_as_str(*parts: Any) -> str:
    return "/".join(str(p) for p in parts)


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "numpy.dtype": _numpy_dtype,
    "numpy.core.multiarray.scalar": _numpy_scalar,
    "numpy._core.multiarray.scalar": _numpy_scalar,
    "builtins.getattr": _getattr_standin,
    **{f"{m}.{c}": _path_as_str for m in ("pathlib", "pathlib._local") for c in ("PosixPath", "WindowsPath")},
}


def _allowed(name: str) -> Callable[..., Any] | None:
    """The safe object a pickled global name may resolve to, or None when it is not allowed."""
    if name in _FUNCTIONS:
        return _FUNCTIONS[name]
    if not _IDENTIFIER_PATH.match(name):
        return None
    module = name.rpartition(".")[0]
    if name in _NAMESPACES or any(module == m or module.startswith(m + ".") for m in _STANDIN_MODULES):
        return type(name.rpartition(".")[2], (Inert,), {"pickled_name": name})
    return None


@dataclass
class UltralyticsCheckpoint:
    """What prodseg uses of an ultralytics checkpoint: weights, class names, the model YAML."""

    path: Path
    state_dict: dict[str, torch.Tensor]
    names: list[str]
    yaml: dict[str, Any] = field(default_factory=dict)
    model_class: str = ""
    task: str = ""
    train_args: dict[str, Any] = field(default_factory=dict)


def is_ultralytics_checkpoint(obj: Any) -> bool:
    """A dict as ultralytics saves it: a pickled model under 'ema' or 'model'."""
    return isinstance(obj, dict) and any(isinstance(obj.get(k), Inert) for k in ("ema", "model"))


def load_ultralytics_checkpoint(path: str | Path) -> UltralyticsCheckpoint:
    """Read an ultralytics `.pt` with the allow-list above; BadInput for anything else."""
    path = Path(path)
    return ultralytics_checkpoint(load_allowlisted(path), path)


def ultralytics_checkpoint(raw: Any, path: Path) -> UltralyticsCheckpoint:
    """The weights, names and YAML of an ultralytics checkpoint already read by `load_allowlisted`."""
    if not is_ultralytics_checkpoint(raw):
        raise BadInput(
            f"{path}: not an ultralytics checkpoint (no pickled model under 'ema' or 'model'); "
            "pass a .pt saved by ultralytics (yolov8n-seg.pt, best.pt)"
        )
    model = raw["ema"] if isinstance(raw.get("ema"), Inert) else raw["model"]
    state = dict(_module_tensors(model, ""))
    if not state:
        raise BadInput(f"{path}: the pickled model holds no tensors; is the file complete?")
    attrs = model.state
    return UltralyticsCheckpoint(
        path=path,
        state_dict=state,
        names=_names(attrs.get("names")),
        yaml=attrs.get("yaml") if isinstance(attrs.get("yaml"), dict) else {},
        model_class=type(model).pickled_name,
        task=str(attrs.get("task") or ""),
        train_args=_as_dict(raw.get("train_args")),
    )


def _as_dict(value: Any) -> dict[str, Any]:
    """ultralytics stores its arguments as a dict or (older releases) a namespace stand-in."""
    if isinstance(value, Inert):
        value = value.state
    return dict(value) if isinstance(value, dict) else {}


def load_allowlisted(path: Path) -> Any:
    """`torch.load(weights_only=True)`, with stand-ins registered for exactly the globals the file names."""
    if not path.is_file():
        raise BadInput(f"{path}: weights file not found; pass an existing .pt")
    try:
        needed = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except (ValueError, RuntimeError, zipfile.BadZipFile, OSError) as exc:
        raise BadInput(
            f"{path}: not a readable checkpoint (truncated, or not written by torch.save: "
            f"{_first_line(exc)}); is the file complete?"
        ) from exc
    refused = sorted(n for n in needed if _allowed(n) is None)
    if refused:
        raise BadInput(
            f"{path}: refused, it asks to run {', '.join(refused[:3])}"
            f"{' …' if len(refused) > 3 else ''}, which is not a weights or model-layer type "
            "(prodseg never executes code from a file); re-save the weights with "
            "torch.save(model.state_dict(), PATH) or as .safetensors"
        )
    entries: list[Callable[..., Any] | tuple[Callable[..., Any], str]] = []
    for name in needed:
        safe = _allowed(name)
        if safe is not None:
            entries.append((safe, name))
    try:
        with torch.serialization.safe_globals(entries):
            return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError, zipfile.BadZipFile) as exc:
        raise BadInput(
            f"{path}: refused or unreadable ({_first_line(exc)}); pass a state dict, "
            "a .safetensors file or a checkpoint saved by prodseg or ultralytics"
        ) from exc


def _module_tensors(module: Any, prefix: str) -> Iterator[tuple[str, torch.Tensor]]:
    """The tensors `nn.Module.state_dict()` would return, read from a stand-in's pickled `__dict__`."""
    state = module.state if isinstance(module, Inert) else {}
    transient = state.get("_non_persistent_buffers_set") or set()
    for key in ("_parameters", "_buffers"):
        for name, value in (state.get(key) or {}).items():
            if isinstance(value, torch.Tensor) and name not in transient:
                yield prefix + name, value.detach().float() if value.is_floating_point() else value
    for name, child in (state.get("_modules") or {}).items():
        if isinstance(child, Inert):
            yield from _module_tensors(child, f"{prefix}{name}.")


def _names(names: Any) -> list[str]:
    if isinstance(names, dict):
        return [str(names[k]) for k in sorted(names, key=lambda k: int(k) if str(k).isdigit() else 0)]
    if isinstance(names, list | tuple):
        return [str(n) for n in names]
    return []


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
