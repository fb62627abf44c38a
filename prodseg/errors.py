"""Exceptions that carry the CLI exit code: 1 = a gate failed, 2 = bad usage or input, 3 = a bug."""

from __future__ import annotations

import importlib
from types import ModuleType

# An unexpected exception: a bug in prodseg, never "a gate failed" (1) nor "bad input" (2).
INTERNAL_ERROR_EXIT = 3


class ProdsegError(Exception):
    """Base class: a user-facing problem, printed as one line by the CLIs."""

    exit_code = 2


class BadInput(ProdsegError):
    """A missing, corrupt or invalid file or value; the message names it and the remedy."""


class ConfigError(BadInput):
    """A config key or value that is not allowed; the message names the key and the choices."""


class MissingExtra(ProdsegError):
    """An optional dependency is not installed; the message names the extra to install."""


class Interrupted(ProdsegError):
    """The user stopped the command (Ctrl-C 130, SIGTERM 143); the message says what was left on disk."""

    exit_code = 130

    def __init__(self, message: str, exit_code: int = 130) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class GateFailed(ProdsegError):
    """The job ran but a gate (budget, verification, dataset check) failed."""

    exit_code = 1


def require(module: str, extra: str, purpose: str = "") -> ModuleType:
    """Import an optional dependency or raise MissingExtra naming the pip extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        why = f" (needed for {purpose})" if purpose else ""
        raise MissingExtra(
            f"the Python package '{module.split('.')[0]}' is not installed{why}: "
            f"run `pip install 'prodseg[{extra}]'` ({exc})"
        ) from exc
