"""Model and data are matched by class name, never silently by index.

`match_classes(model_names, data_names)` decides how a model's label map is read against a dataset's:
- the same names in the same order: as is;
- the same names in another order: remapped by name, and the caller says so;
- anything else: BadInput listing both lists, unless a class map (model name -> data name, e.g. from
  `--class-map FILE`, a YAML mapping) says how the model's classes land in the data's. Several model
  classes may map to one data class (merging `bottle` and `can` into `product`).
The result is a lookup table from model label to data label, applied to predicted label maps before
they are scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prodseg.data.taxonomy import IGNORE_INDEX
from prodseg.errors import BadInput


@dataclass(frozen=True)
class ClassMatch:
    """How to read a model's labels as the data's: `lut[model label] -> data label`; `note` says what."""

    lut: np.ndarray | None  # None: identical lists, nothing to do
    note: str = ""
    data_classes: int = 0  # how many classes the data has (the labels `lut` maps into)

    def apply(self, labels: np.ndarray) -> np.ndarray:
        return labels if self.lut is None else self.lut[labels]


def _shown(names: Sequence[str]) -> str:
    return "[" + ", ".join(names[:12]) + (", …" if len(names) > 12 else "") + f"] ({len(names)})"


def match_classes(
    model: Sequence[str],
    data: Sequence[str],
    model_source: str = "the model",
    data_source: str = "the data",
    class_map: dict[str, str] | None = None,
) -> ClassMatch:
    """The lookup from model labels to data labels, or BadInput when the names do not correspond."""
    model, data = [str(n) for n in model], [str(n) for n in data]
    if class_map is None and model == data:
        return ClassMatch(None)
    mapping = {name: (class_map or {}).get(name, name) for name in model}
    index = {name: i for i, name in enumerate(data)}
    unknown = sorted({target for target in mapping.values() if target not in index})
    if unknown or (class_map is None and sorted(model) != sorted(data)):
        remedy = (
            "a --class-map FILE (YAML: model class -> data class) maps them"
            if class_map is None
            else "fix the --class-map so every model class maps to a data class"
        )
        raise BadInput(
            f"{model_source} and {data_source} have different classes: model {_shown(model)}, "
            f"data {_shown(data)}"
            + (f"; not in the data: {', '.join(unknown[:8])}" if unknown else "")
            + f"; {remedy}"
        )
    lut = np.full(256, IGNORE_INDEX, np.uint8)  # labels outside the model's classes stay out of range
    for label, name in enumerate(model):
        lut[label] = index[mapping[name]]
    how = "by the class map" if class_map is not None else "by name (same names, another order)"
    return ClassMatch(lut, f"{model_source}'s classes are matched to {data_source}'s {how}", len(data))


def read_class_map(path: str | Path) -> dict[str, str]:
    """A `--class-map` YAML: a mapping of model class name -> data class name."""
    from prodseg.yamlio import read_yaml

    data = read_yaml(path, "class map")
    if (
        not isinstance(data, dict)
        or not data
        or not all(isinstance(k, str | int) and isinstance(v, str | int) for k, v in data.items())
    ):
        raise BadInput(
            f"{path}: a class map is a YAML mapping of model class name to data class name, "
            "e.g. `bottle: product`"
        )
    return {str(k): str(v) for k, v in data.items()}
