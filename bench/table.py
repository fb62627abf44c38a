"""The comparison table printed in the terminal: one row per (artifact, backend, video)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.table import Table

from prodseg.bench.names import artifact_label

Result = dict[str, Any]


def _acc(field: str, fmt: str) -> Callable[[Result], str]:
    return lambda r: "-" if r.get("accuracy") is None else format(r["accuracy"][field], fmt)


# Header -> cell text; a list, not a class hierarchy, so a column is one line to add.
COLUMNS: list[tuple[str, Callable[[Result], str]]] = [
    ("model", lambda r: r.get("label") or artifact_label(r["artifact"])),
    ("backend", lambda r: r["backend"] if r["mode"] == "latency" else f"{r['backend']} x{r['requests']}"),
    ("precision", lambda r: r["precision"]),
    ("size MB", lambda r: f"{r['size_mb']:.1f}"),
    ("video", lambda r: Path(r["video"]).name),
    ("FPS e2e", lambda r: f"{r['fps_e2e']:.1f}"),
    ("FPS model", lambda r: f"{r['fps_model']:.1f}"),
    ("p50 ms", lambda r: f"{r['latency_ms']['p50']:.1f}"),
    ("p90 ms", lambda r: f"{r['latency_ms']['p90']:.1f}"),
    ("p99 ms", lambda r: f"{r['latency_ms']['p99']:.1f}"),
    ("peak MB", lambda r: f"{r['memory']['peak_rss_mb']:.0f}"),
    ("CPU %", lambda r: f"{r['cpu']['percent']:.0f}"),
    ("mIoU", _acc("miou", ".3f")),
    ("flicker", _acc("flicker", ".4f")),
]


def comparison_table(results: list[Result], title: str = "prodseg-bench") -> Table:
    """A rich Table of the results; latency is per frame through the whole pipeline."""
    table = Table(title=title)
    for header, _ in COLUMNS:
        table.add_column(
            header, justify="left" if header in ("artifact", "backend", "precision", "video") else "right"
        )
    for r in results:
        table.add_row(*(cell(r) for _, cell in COLUMNS))
    return table


def markdown_table(results: list[Result]) -> str:
    """The same table as GitHub markdown (for report.md)."""
    lines = ["| " + " | ".join(h for h, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(r) for _, cell in COLUMNS) + " |" for r in results]
    return "\n".join(lines)
