"""One way to read a YAML file: `yaml.safe_load` (never a full loader), every failure a BadInput naming it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prodseg.errors import BadInput


def read_yaml(path: str | Path, what: str = "YAML file") -> Any:
    """The parsed document (None for an empty file); BadInput for a missing, non-UTF-8 or invalid file.

    `what` names the file's role in the message, e.g. "classes file" or "ultralytics metadata.yaml".
    """

    path = Path(path)
    if not path.is_file():
        found = "is a folder" if path.is_dir() else "not found"
        raise BadInput(f"{path}: {what} {found}; give the path of a YAML file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: {what} is not UTF-8 text ({exc.reason}); save it as UTF-8") from exc
    return parse_yaml(text, path, what)


def parse_yaml(text: str, path: str | Path, what: str = "YAML file") -> Any:
    """`yaml.safe_load` of text already read (e.g. through a containment check); BadInput naming `path`."""
    import yaml

    try:
        return yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError) as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise BadInput(f"{path}: {what} is not valid YAML{at} ({type(exc).__name__}); fix the file") from exc
