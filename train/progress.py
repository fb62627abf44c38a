"""A per-epoch progress bar (rich) showing loss, learning rate and images/s."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


@contextlib.contextmanager
def epoch_progress(epoch: int, total_epochs: int, enabled: bool = True) -> Iterator[Callable | None]:
    """Yield `update(done, total, loss=, lr=, ips=)` drawing a bar on stderr, or None when disabled."""
    if not enabled:
        yield None
        return
    columns = (
        TextColumn(f"epoch {epoch}/{total_epochs}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[stats]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task("train", total=None, stats="")

        def update(done: int, total: int, loss: float, lr: float, ips: float) -> None:
            bar.update(
                task, completed=done, total=total, stats=f"loss {loss:.4f}  lr {lr:.2e}  {ips:.1f} img/s"
            )

        yield update
