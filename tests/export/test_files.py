"""The export folder changes as one set: an export that fails or is killed midway leaves the earlier set."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from prodseg.export.cli import main
from prodseg.export.files import leftovers
from prodseg.export.registry import EXPORTERS
from prodseg.metadata import file_sha256
from tests.export.test_hostile import earlier_export, snapshot


def run(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def temporaries(out: Path) -> list[Path]:
    """Folders an export of `out` builds beside it."""
    return [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


def fail_after_onnx(exc: BaseException, seen: list[Path]):
    """An exporter step that raises once the new model.onnx is in the (temporary) export folder."""

    def step(ctx) -> None:
        assert (ctx.out / "model.onnx").is_file()
        seen.append(ctx.out)
        raise exc

    return step


@pytest.mark.slow
@pytest.mark.parametrize(
    "exc, code, says",
    [
        (RuntimeError("converter crashed"), 3, "internal error: RuntimeError: converter crashed"),
        (
            OSError(errno.ENOSPC, "No space left on device", "model_fp16.onnx"),
            2,
            "error: model_fp16.onnx: No space left on device",
        ),
        (KeyboardInterrupt(), 130, "interrupted"),
    ],
    ids=["bug", "disk-full", "ctrl-c"],
)
def test_failure_mid_export_keeps_the_earlier_set(exc, code, says, tmp_path, deeplab_ckpt, monkeypatch):
    out = earlier_export(tmp_path / "out")
    before = snapshot(out)
    seen: list[Path] = []
    monkeypatch.setitem(EXPORTERS, "fp16", fail_after_onnx(exc, seen))
    res = run(deeplab_ckpt, "--onnx", "--fp16", "--no-verify", "--out", out)
    assert res.exit_code == code and says in res.output.strip().splitlines()[-1], res.output
    assert "Traceback" not in res.output
    assert seen and seen[0] != out  # the new ONNX went into a folder beside `out`...
    assert snapshot(out) == before and not temporaries(out)  # ...which is gone, and `out` untouched


def test_failed_first_export_leaves_no_folder(tmp_path, deeplab_ckpt, monkeypatch):
    """Parent folders created for a new --out are removed again when the export fails."""

    def onnx_then_fail(ctx) -> None:
        (ctx.out / "model.onnx").write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device", str(ctx.out / "model.onnx"))

    monkeypatch.setitem(EXPORTERS, "onnx", onnx_then_fail)
    res = run(deeplab_ckpt, "--no-verify", "--out", tmp_path / "a" / "b" / "out")
    assert res.exit_code == 2 and "No space left on device" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.slow
def test_completed_export_replaces_the_whole_set(tmp_path, deeplab_ckpt):
    out = earlier_export(tmp_path / "out")
    (out / "calib_cache").mkdir()
    (out / "calib_cache" / "ranges.json").write_text("{}")
    res = run(deeplab_ckpt, "--onnx", "--verify-images", "2", "--out", out)
    assert res.exit_code == 0, res.output
    # The old IR is gone with its manifest (nothing the new manifest does not describe); caches carry over.
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == ["calib_cache/ranges.json", "export_manifest.json", "model.onnx"]
    manifest = json.loads((out / "export_manifest.json").read_text())
    assert manifest["source_checkpoint_sha256"] == file_sha256(deeplab_ckpt)
    assert [a["path"] for a in manifest["artifacts"]] == ["model.onnx"]
    assert [r["path"] for r in manifest["verification"]["rows"]] == [str(out / "model.onnx")]
    assert f".{out.name}." not in json.dumps(manifest) and not temporaries(out)


# Runs prodseg-export with the FP16 step replaced by one that reports the temporary folder and stalls,
# so the test can SIGKILL the process at a known point: after the new model.onnx is written.
STALL_AFTER_ONNX = """
import sys, time
from pathlib import Path
from prodseg.export.registry import EXPORTERS

FLAG = Path(sys.argv[1])

def stall(ctx):
    FLAG.write_text(str(ctx.out))
    time.sleep(300)

EXPORTERS["fp16"] = stall
sys.argv = ["prodseg-export", *sys.argv[2:]]
from prodseg.export.cli import main
main()
"""


@pytest.mark.slow
def test_sigkill_mid_export_keeps_the_earlier_set(tmp_path, deeplab_ckpt):
    out = earlier_export(tmp_path / "out")
    before = snapshot(out)
    flag = tmp_path / "stalled"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            STALL_AFTER_ONNX,
            str(flag),
            str(deeplab_ckpt),
            "--onnx",
            "--fp16",
            "--no-verify",
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ},
    )
    try:
        deadline = time.monotonic() + 120
        while not flag.is_file() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert flag.is_file(), proc.communicate(timeout=30)[0].decode(errors="replace")[-2000:]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    building = Path(flag.read_text())
    assert (building / "model.onnx").is_file() and building.parent == out.parent
    assert snapshot(out) == before
    # kill -9 runs no cleanup: the half-built set stays beside `out`, hidden, never under its name.
    assert temporaries(out) == [building] and leftovers(out) == [building]
    # The next export completes over the earlier set (and names the leftover in a warning).
    res = run(deeplab_ckpt, "--no-verify", "--out", out)
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / "export_manifest.json").read_text())
    assert manifest["source_checkpoint_sha256"] == file_sha256(deeplab_ckpt)


def test_leftovers_of_a_killed_export_are_named(tmp_path):
    out = tmp_path / "out"
    for name in (".out.a1.tmp", ".out.b2.old", ".outer.c3.tmp", ".out.d4.json", "out"):
        (tmp_path / name).mkdir()
    assert [p.name for p in leftovers(out)] == [".out.a1.tmp", ".out.b2.old"]
    assert leftovers(tmp_path / "missing" / "out") == []
