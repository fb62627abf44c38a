"""Class lists: the default `shelf10` taxonomy and the `classes.yaml` file of a dataset folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from prodseg.atomic import write_text
from prodseg.errors import BadInput

IGNORE_INDEX = 255

# Index 0 is background; instance formats (COCO, YOLO-seg) use the other nine.
SHELF10_NAMES: tuple[str, ...] = (
    "background",
    "shelf",
    "price_tag",
    "bottle",
    "can",
    "box",
    "bag",
    "jar",
    "gap",
    "signage",
)
SHELF10_COLORS: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0),
    (128, 128, 128),
    (255, 255, 0),
    (0, 128, 255),
    (255, 64, 64),
    (64, 200, 64),
    (200, 100, 255),
    (255, 160, 0),
    (255, 0, 255),
    (0, 255, 255),
)


@dataclass(frozen=True)
class ClassList:
    """Ordered class names with RGB colours; index i is label value i in the masks."""

    names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]

    def __post_init__(self) -> None:
        if len(self.names) != len(self.colors):
            raise BadInput(f"classes: {len(self.names)} names but {len(self.colors)} colours")
        if len(set(self.names)) != len(self.names):
            raise BadInput(f"classes: duplicate class names in {list(self.names)}")
        if not 1 <= len(self.names) < IGNORE_INDEX:
            raise BadInput(f"classes: {len(self.names)} classes; between 1 and 254 are supported")
        bad = [c for c in self.colors if len(c) != 3 or not all(0 <= v <= 255 for v in c)]
        if bad:
            raise BadInput(f"classes: colour {list(bad[0])} is not [r, g, b] with values 0..255")

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def thing_names(self) -> tuple[str, ...]:
        """Names without background: the categories of COCO and YOLO-seg (id = index - 1 in YOLO)."""
        return self.names[1:]

    def to_dict(self) -> dict:
        return {"names": list(self.names), "colors": [list(c) for c in self.colors]}

    @classmethod
    def from_dict(cls, d: dict, source: str = "classes") -> ClassList:
        try:
            names = tuple(str(n) for n in d["names"])
            colors = tuple(tuple(int(v) for v in c) for c in d.get("colors") or default_colors(len(names)))
        except (KeyError, TypeError, ValueError, OverflowError, AttributeError) as exc:
            raise BadInput(
                f"{source}: expected 'names: [...]' and optional 'colors: [[r,g,b], ...]' ({exc!r:.80})"
            ) from exc
        try:
            return cls(names, colors)  # type: ignore[arg-type]
        except BadInput as exc:
            raise BadInput(f"{source}: {str(exc).split(': ', 1)[-1]}") from exc

    @classmethod
    def load(cls, path: str | Path) -> ClassList:
        path = Path(path)
        if not path.is_file():
            raise BadInput(f"{path}: classes.yaml is missing; write one with 'names:' and 'colors:'")
        from prodseg.yamlio import read_yaml

        return cls.from_dict(read_yaml(path, "classes.yaml") or {}, str(path))

    def save(self, path: str | Path) -> Path:
        return write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))


def default_colors(n: int) -> list[tuple[int, int, int]]:
    """Distinct colours for n classes: shelf10's first, then a deterministic HSV walk."""
    colors = list(SHELF10_COLORS[:n])
    for i in range(len(colors), n):
        h = (i * 0.618033988749895) % 1.0
        import colorsys

        r, g, b = colorsys.hsv_to_rgb(h, 0.8, 0.95)
        colors.append((int(r * 255), int(g * 255), int(b * 255)))
    return colors


SHELF10 = ClassList(SHELF10_NAMES, SHELF10_COLORS)
