"""The verification table (rich) and export_manifest.json."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from prodseg.atomic import write_json
from prodseg.export.verify import VerifyRow


def _num(value: float, fmt: str) -> str:
    return "-" if value is None or math.isnan(value) else format(value, fmt)


def _pct(fraction: float, fmt: str) -> str:
    """Fractions are data; the table shows them in percent (points for ΔmIoU)."""
    return _num(100 * fraction if fraction is not None else fraction, fmt)


def render_table(rows: list[VerifyRow], console: Console | None = None) -> Table:
    """Print one row per artifact: precision, size, max|Δ|, agreement, mIoU, ΔmIoU, latency, status."""
    table = Table(title="export verification vs PyTorch")
    for col in (
        "artifact",
        "precision",
        "backend",
        "size MB",
        "max|Δ|",
        "agree %",
        "mIoU %",
        "ΔmIoU",
        "infer ms",
        "status",
    ):
        left = col in ("artifact", "precision", "backend", "status")
        table.add_column(col, justify="left" if left else "right")
    for r in rows:
        status = "[green]ok[/]" if r.status == "ok" else f"[yellow]{r.status}[/] {r.note}"
        table.add_row(
            r.artifact,
            r.precision,
            r.backend,
            _num(r.size_mb, ".2f"),
            _num(r.max_abs_diff, ".2e"),
            _pct(r.agreement, ".3f"),
            _pct(r.miou, ".2f"),
            _pct(r.delta_miou, "+.2f"),
            _num(r.infer_ms, ".1f"),
            status,
        )
    console = console or Console()
    if not console.is_terminal:
        console.width = max(console.width, 150)  # logs and CI: never truncate the numbers
    console.print(table)
    return table


def write_manifest(path: Path, payload: dict[str, Any]) -> Path:
    """Write the manifest atomically (NaN becomes null so any JSON reader accepts it)."""
    return write_json(path, _clean(payload))


def _clean(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj
