"""Shared CLI plumbing: one-line errors, exit codes, and which torchrun rank said it."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from prodseg.cli import handle_errors
from prodseg.errors import BadInput, GateFailed


@click.command()
@click.option("--gate", is_flag=True)
@handle_errors
def fails(gate: bool) -> None:
    raise GateFailed("gate fps: measured 3, limit 5") if gate else BadInput("x.mp4: not a video; pass a file")


def test_errors_are_one_line_with_their_exit_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    res = CliRunner().invoke(fails, [])
    assert (res.exit_code, res.stderr) == (2, "error: x.mp4: not a video; pass a file\n")
    res = CliRunner().invoke(fails, ["--gate"])
    assert (res.exit_code, res.stderr) == (1, "error: gate fps: measured 3, limit 5\n")


def test_under_a_multi_process_torchrun_job_errors_name_the_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert CliRunner().invoke(fails, []).stderr == "error: [rank 1] x.mp4: not a video; pass a file\n"
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert CliRunner().invoke(fails, []).stderr == "error: x.mp4: not a video; pass a file\n"
