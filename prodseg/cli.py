"""Shared CLI plumbing: one-line errors with the contract's exit codes instead of tracebacks.

Exit codes: 0 success; 1 the job ran and a gate failed; 2 bad usage or bad input (named in one line,
before any work where it can be checked up front); 3 an internal error, i.e. a bug in prodseg — one line
on stderr, the traceback with ``-v`` or in the file the line names; 130/143 interrupted (Ctrl-C/SIGTERM).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import click

from prodseg.errors import INTERNAL_ERROR_EXIT, BadInput, Interrupted, ProdsegError

F = TypeVar("F", bound=Callable[..., Any])
SIGPIPE_EXIT = 128 + 13  # what a shell reports for a writer killed by SIGPIPE

# OSError numbers that describe the user's disk or permissions, not a prodseg bug: exit 2 with the path.
_USER_OS_ERRORS = {
    errno.ENOSPC: "the disk is full; free space or choose another output location",
    errno.EDQUOT: "the disk quota is exceeded; free space or choose another output location",
    errno.EROFS: "the filesystem is read-only; choose a writable output location",
    errno.EACCES: "permission denied; fix its permissions or choose another location",
    errno.EPERM: "operation not permitted; fix its permissions or choose another location",
    errno.ENOTDIR: "a part of the path is a file, not a folder; choose another location",
    errno.EISDIR: "it is a folder where a file was expected; choose a file path",
    errno.ENAMETOOLONG: "the file name is too long; choose a shorter path",
}


def os_error_message(exc: OSError) -> str | None:
    """The one-line message for an OSError caused by the user's disk or paths, or None for other errors."""
    remedy = _USER_OS_ERRORS.get(exc.errno or -1)
    if remedy is None:
        return None
    where = exc.filename if exc.filename is not None else "an output file"
    return f"{where}: {exc.strerror or os.strerror(exc.errno or 0)} ({remedy})"


class Terminated(BaseException):
    """SIGTERM turned into an exception so that every `finally` block cleans up as for Ctrl-C."""


@contextlib.contextmanager
def _sigterm_as_exception() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_terminated(signum: int, frame: Any) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _report_internal_error(exc: BaseException) -> None:
    """One line for a bug; the traceback on stderr with -v (DEBUG logging), else in a crash file."""
    text = "".join(traceback.format_exception(exc))
    summary = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
    if logging.getLogger().isEnabledFor(logging.DEBUG):
        click.echo(text, err=True, nl=False)
        where = "the traceback is above"
    else:
        where = "rerun with -v for the traceback"
        with contextlib.suppress(OSError):
            fd, path = tempfile.mkstemp(
                prefix=f"prodseg-crash-{time.strftime('%Y%m%d-%H%M%S')}-",
                suffix=".txt",
                dir=os.environ.get("PRODSEG_CRASH_DIR") or None,  # None: the temp folder
            )
            with os.fdopen(fd, "w") as f:
                f.write(" ".join(sys.argv) + "\n" + text)
            where = f"traceback in {path}"
    click.echo(f"internal error: {rank_prefix()}{summary} (a bug: please report it; {where})", err=True)


def handle_errors(fn: F) -> F:
    """Map what a command raises onto the exit-code contract, each as one line on stderr."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with _sigterm_as_exception():
                return fn(*args, **kwargs)
        except click.exceptions.ClickException:
            raise  # click's own usage errors already print one line and exit 2
        except Interrupted as exc:  # the command says itself what it left on disk
            click.echo(f"{rank_prefix()}{exc}", err=True)
            sys.exit(exc.exit_code)
        except ProdsegError as exc:
            click.echo(f"error: {rank_prefix()}{exc}", err=True)
            sys.exit(exc.exit_code)
        except (KeyboardInterrupt, Terminated) as exc:
            code = 130 if isinstance(exc, KeyboardInterrupt) else 143
            click.echo("interrupted: nothing was written under a final name", err=True)
            sys.exit(code)
        except BrokenPipeError:
            # the reader went away (`prodseg-data synth ... | head -1`): stop quietly, as a pipe writer does
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(SIGPIPE_EXIT)
        except OSError as exc:
            message = os_error_message(exc)
            if message is None:
                _report_internal_error(exc)
                sys.exit(INTERNAL_ERROR_EXIT)
            click.echo(f"error: {rank_prefix()}{message}", err=True)
            sys.exit(BadInput.exit_code)
        except MemoryError as exc:
            click.echo(
                f"error: {rank_prefix()}out of memory ({exc or 'the allocation failed'}); "
                "use smaller inputs or batch, or a machine with more memory",
                err=True,
            )
            sys.exit(BadInput.exit_code)
        except Exception as exc:  # noqa: BLE001 - anything else is a bug, reported as one
            _report_internal_error(exc)
            sys.exit(INTERNAL_ERROR_EXIT)

    return wrapper  # type: ignore[return-value]


def _usage_error(exc: click.UsageError, command_path: str) -> None:
    click.echo(f"error: {exc.format_message().rstrip('.')}; see '{command_path} --help'", err=True)
    sys.exit(exc.exit_code)


class OneLineUsage(click.Command):
    """Click's usage errors as the one `error: ...` line (exit 2) that every other bad input gets."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            path = " ".join(p for p in (parent.command_path if parent else "", info_name or "") if p)
            _usage_error(exc, path)
            raise  # not reached: _usage_error exits


class OneLineUsageGroup(OneLineUsage, click.Group):
    """A command group whose own usage errors (an unknown subcommand too) and subcommands' are one line."""

    command_class = OneLineUsage

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            _usage_error(exc, ctx.command_path)
            raise  # not reached


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
    # basicConfig does nothing when logging is already set up (a second command in one process)
    logging.getLogger().setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("PIL", "matplotlib", "urllib3", "mlflow", "alembic", "nncf", "ultralytics"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
