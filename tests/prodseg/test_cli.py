"""Shared CLI plumbing: one-line errors, exit codes, and which torchrun rank said it."""

from __future__ import annotations

import errno
import signal
import subprocess
import sys
import tempfile

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


@click.command()
@click.option("--kind", default="bug")
@click.option("-v", "--verbose", is_flag=True)
@handle_errors
def crashes(kind: str, verbose: bool) -> None:
    from prodseg.cli import setup_logging

    setup_logging(verbose)
    if kind == "disk":
        raise OSError(errno.ENOSPC, "No space left on device", "/data/out/model.onnx")
    if kind == "click":
        raise click.BadParameter("not a number", param_hint="--x")
    raise ZeroDivisionError("division by zero")


def test_an_unexpected_exception_is_exit_3_one_line_and_the_traceback_is_kept(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PRODSEG_CRASH_DIR", str(tmp_path))
    res = CliRunner().invoke(crashes, [])
    assert res.exit_code == 3 and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert res.stderr.startswith("internal error: ZeroDivisionError: division by zero (a bug: please report")
    crash_file = next(tmp_path.glob("prodseg-crash-*.txt"))
    assert crash_file.name in res.stderr and "Traceback" in crash_file.read_text()


def test_crash_files_go_to_the_temp_folder_without_prodseg_crash_dir(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("PRODSEG_CRASH_DIR")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    res = CliRunner().invoke(crashes, [])
    assert res.exit_code == 3 and next(tmp_path.glob("prodseg-crash-*.txt")).name in res.stderr


def test_with_verbose_the_traceback_is_printed() -> None:
    res = CliRunner().invoke(crashes, ["-v"])
    assert res.exit_code == 3 and "Traceback" in res.stderr and "ZeroDivisionError" in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("internal error: ")


def test_a_full_disk_is_bad_input_naming_the_path_and_click_errors_stay_click_errors() -> None:
    res = CliRunner().invoke(crashes, ["--kind", "disk"])
    expected = (
        "error: /data/out/model.onnx: No space left on device "
        "(the disk is full; free space or choose another output location)\n"
    )
    assert (res.exit_code, res.stderr) == (2, expected)
    res = CliRunner().invoke(crashes, ["--kind", "click"])
    assert res.exit_code == 2 and "Invalid value for --x: not a number" in res.stderr


def test_sigterm_runs_cleanup_and_exits_143(tmp_path) -> None:
    script = tmp_path / "slow.py"
    done = tmp_path / "cleaned"
    script.write_text(
        "import time, click\nfrom prodseg.cli import handle_errors\n"
        "@click.command()\n@handle_errors\ndef main():\n"
        "    try:\n        print('ready', flush=True); time.sleep(30)\n"
        f"    finally:\n        open({str(done)!r}, 'w').close()\n"
        "main()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 143 and err.startswith("interrupted") and done.exists()


@pytest.mark.parametrize(
    "command, args, expected",
    [
        (
            "prodseg-train",
            ["--epochs", "x"],
            "error: Invalid value for '--epochs': 'x' is not a valid integer; see 'prodseg-train --help'",
        ),
        ("prodseg-data", ["nope"], "error: No such command 'nope'; see 'prodseg-data --help'"),
        ("prodseg-data", ["convert"], "error: Missing argument 'SRC'; see 'prodseg-data convert --help'"),
        ("prodseg-eval", ["--bogus"], "error: No such option '--bogus'"),
    ],
)
def test_usage_errors_of_every_command_are_one_line(command, args, expected) -> None:
    from importlib.metadata import entry_points

    script = next(e for e in entry_points(group="console_scripts") if e.name == command).load()
    res = CliRunner().invoke(script, args, prog_name=command)
    assert res.exit_code == 2 and res.stderr.startswith(expected) and res.stderr.count("\n") == 1


def test_a_closed_pipe_stops_quietly(tmp_path) -> None:
    script = tmp_path / "talk.py"
    script.write_text(
        "import click\nfrom prodseg.cli import handle_errors\n"
        "@click.command()\n@handle_errors\ndef main():\n"
        "    for i in range(200000):\n        click.echo(f'line {i}')\n"
        "main()\n"
    )
    out = subprocess.run(f"{sys.executable} {script} | head -1", shell=True, capture_output=True, text=True)
    assert out.stdout == "line 0\n" and "internal error" not in out.stderr and "Traceback" not in out.stderr
