"""Names for models in tables and reports: short, and unique within a run.

Two exports both hold a `model.onnx`, and every OpenVINO IR is a `model.xml`, so a file name alone does
not tell models apart: the default label is the parent folder and the file name, with more parent
folders where that is still ambiguous; `--label` names them explicitly.
"""

from __future__ import annotations

from pathlib import Path

from prodseg.errors import BadInput


def artifact_label(path: str | Path) -> str:
    """`exports/a/model.onnx` -> `a/model.onnx`; a file in the working folder keeps its bare name."""
    p = Path(path)
    return f"{p.parent.name}/{p.name}" if p.parent.name else p.name


def model_labels(models: list[str], given: list[str] | None = None) -> list[str]:
    """One label per model: `given` (checked: one each, unique) or parent/name, lengthened until unique."""
    if given:
        if len(given) != len(models):
            raise BadInput(
                f"--label: given {len(given)} time(s) for {len(models)} --model(s); give one "
                "label per --model, in the same order"
            )
        if len(set(given)) != len(given):
            raise BadInput(f"--label: labels must differ, got {', '.join(given)}")
        return list(given)
    labels = [artifact_label(m) for m in models]
    files = [str(Path(m).resolve()) for m in models]
    for depth in range(3, 9):
        # labels shared by different files get one more parent folder; the same file twice stays as is
        clashing = {
            label
            for label in labels
            if len({f for f, x in zip(files, labels, strict=True) if x == label}) > 1
        }
        if not clashing:
            break
        labels = [
            _tail(m, depth) if label in clashing else label for m, label in zip(models, labels, strict=True)
        ]
    seen: dict[str, int] = {}
    unique = []
    for label in labels:  # the same file twice: number the repeats
        seen[label] = seen.get(label, 0) + 1
        unique.append(label if seen[label] == 1 else f"{label} #{seen[label]}")
    return unique


def _tail(path: str, parts: int) -> str:
    return "/".join(Path(path).resolve().parts[-parts:])
