"""scripts/gpu_check.sh: on the CPU (DEV=cpu QUICK=1, the gpu tests themselves run in their own folders)
every item PASSes or SKIPs with its reason, each writes its log and the summary is written; a FAILed item
makes it exit 1; bad usage exits 2 with one `error:` line before anything is created."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"
ITEMS = [
    "facts", "driver", "torch_device", "data", "train", "export_onnx", "export_trt", "bench_torch",
    "bench_onnx", "bench_trt", "ort_device", "tests_train", "tests_runtime", "tests_bench", "tests_export",
]  # fmt: skip
# What a CPU can do: the rest needs a GPU (driver, TensorRT) or is left to make test (the gpu tests).
CPU_PASSES = {
    "facts", "torch_device", "data", "train", "export_onnx", "bench_torch", "bench_onnx", "ort_device",
}  # fmt: skip


def _check(*args: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "BIN": str(Path(sys.executable).parent), "DEV": "cpu", "QUICK": "1", **env}
    return subprocess.run(
        ["bash", str(SCRIPT), *map(str, args)],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _items(summary: Path) -> dict[str, tuple[str, str]]:
    """{item: (status, reason)} from the summary's item lines `STATUS name  Ns  reason`."""
    rows = {}
    for line in summary.read_text().splitlines():
        status, *rest = line.split(maxsplit=3)
        if status in ("PASS", "SKIP", "FAIL"):
            name, _seconds, reason = (rest + [""])[:3]
            rows[name] = (status, reason)
    return rows


def _named(rows: dict[str, tuple[str, str]], status: str) -> set[str]:
    return {name for name, (got, _) in rows.items() if got == status}


@pytest.mark.slow
def test_cpu_check_passes_or_skips_every_item(tmp_path: Path) -> None:
    out = tmp_path / "check"
    proc = _check(out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = _items(out / "summary.txt")
    assert list(rows) == ITEMS
    assert _named(rows, "PASS") == CPU_PASSES, rows
    for name, (status, reason) in rows.items():
        assert status in ("PASS", "SKIP") and reason.strip() and reason != "(no output)", (name, status)
        assert (out / f"{name}.log").read_text().strip(), name
    assert "DEV=cpu" in rows["driver"][1] and "QUICK=1" in rows["tests_train"][1]
    assert (out / "summary.txt").read_text().splitlines()[-1] == "RESULT: PASS (no item failed)"
    assert "RESULT: PASS" in proc.stdout and "tar czf" in proc.stdout
    for name in ("torch", "onnx"):
        (row,) = json.loads((out / f"bench-{name}.json").read_text())["results"]
        assert row["device"] == "cpu" and row["accuracy"]["frames"] > 0
    assert json.loads((out / "bench-torch.json").read_text())["results"][0]["precision"] == "bf16"


def _not_empty(tmp_path: Path) -> Path:
    folder = tmp_path / "earlier"
    folder.mkdir()
    (folder / "summary.txt").write_text("an earlier check\n")
    return folder


def _under_a_file(tmp_path: Path) -> Path:
    (tmp_path / "a_file").write_text("")
    return tmp_path / "a_file" / "check"


# case -> (output folder made from tmp_path, extra arguments, environment, phrase the error names)
HOSTILE = {
    "unknown device": (lambda t: t / "check", [], {"DEV": "tpu"}, "DEV=tpu: not a device"),
    "device with a name": (lambda t: t / "check", [], {"DEV": "cuda:x"}, "DEV=cuda:x"),
    "budget not a number": (lambda t: t / "check", [], {"BUDGET_S": "8m"}, "BUDGET_S=8m: not a whole"),
    "two output folders": (lambda t: t / "check", ["second"], {}, "too many arguments (2)"),
    "no virtualenv": (lambda t: t / "check", [], {"BIN": "/nonexistent/bin"}, "/nonexistent/bin/python"),
    "output folder not empty": (_not_empty, [], {}, "exists and is not empty"),
    "output under a file": (_under_a_file, [], {}, "cannot create this folder"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_bad_usage_exits_2_with_one_line_and_creates_nothing(case: str, tmp_path: Path) -> None:
    make_out, extra, env, phrase = HOSTILE[case]
    out = make_out(tmp_path)
    before = sorted(p.name for p in out.iterdir()) if out.is_dir() else None
    proc = _check(out, *extra, **env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and phrase in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert (sorted(p.name for p in out.iterdir()) if out.is_dir() else None) == before
    assert not (tmp_path / "check").exists() and not (ROOT / "second").exists()


def test_a_failed_item_exits_1_and_skips_what_needs_it(tmp_path: Path) -> None:
    """DEV=cuda on a machine without a GPU: driver, torch and training FAIL with their reasons, the items
    that need the checkpoint SKIP naming it, and the check exits 1."""
    if shutil.which("nvidia-smi") or Path("/proc/driver/nvidia/version").exists():
        pytest.skip("an NVIDIA driver is installed here: the GPU items would not fail")
    out = tmp_path / "check"
    proc = _check(out, DEV="cuda")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    rows = _items(out / "summary.txt")
    assert _named(rows, "FAIL") == {"driver", "torch_device", "train"}
    assert "nvidia-smi not found" in rows["driver"][1] and "--device cuda" in rows["train"][1]
    assert rows["bench_torch"] == ("SKIP", "needs best.pt from the train item, which did not make it")
    assert (out / "summary.txt").read_text().splitlines()[-1] == "RESULT: FAIL (3 item(s))"
