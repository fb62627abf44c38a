"""What every hostile-input test asserts of a refused command: one `error: ` line, no traceback."""

from __future__ import annotations

from click.testing import Result

# Lines a command may print before its error without breaking the contract (warnings about the machine).
NOISE = ("warning: load average",)


def one_error_line(output: str) -> str:
    """The single `error: ` line of a failed command's output (machine warnings aside)."""
    lines = [line for line in output.strip().splitlines() if line.strip() and not line.startswith(NOISE)]
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    assert "Traceback" not in output
    return lines[0]


def check_error(result: Result, phrase: str) -> str:
    """Exit 2, exactly one stderr line `error: ...` containing `phrase`, no traceback anywhere."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    line = one_error_line(result.stderr)
    assert phrase in line, line
    assert "Traceback" not in result.output
    return line
