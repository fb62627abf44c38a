"""Shared CLI plumbing: one-line errors with the contract's exit codes instead of tracebacks."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from prodseg.errors import ProdsegError

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(fn: F) -> F:
    """Turn ProdsegError into `error: <message>` on stderr and its exit code (2 bad input, 1 gate)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ProdsegError as exc:
            click.echo(f"error: {rank_prefix()}{exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted: nothing was written under a final name", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def rank_prefix() -> str:
    """`[rank N] ` under a multi-process torchrun job, whose ranks all print to one terminal, else ''."""
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1 and "RANK" in os.environ:
        return f"[rank {os.environ['RANK']}] "
    return ""


def setup_logging(verbose: bool = False) -> None:
    """Plain, quiet logging for the CLIs; libraries' chatter stays at WARNING."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s" if not verbose else "%(asctime)s %(name)s: %(message)s",
    )
    for noisy in ("PIL", "matplotlib", "urllib3", "mlflow", "alembic", "nncf", "ultralytics"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
