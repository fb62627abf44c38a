"""The package layout is the architecture: stage folders map onto prodseg.<stage>, and the edge
stages (runtime, bench) never pull in torch."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest


@pytest.mark.parametrize("stage", ["data", "train", "export", "runtime", "bench"])
def test_stage_is_a_prodseg_subpackage(stage: str) -> None:
    spec = importlib.util.find_spec(f"prodseg.{stage}")
    assert spec is not None and spec.origin is not None
    assert spec.origin.replace("\\", "/").endswith(f"/{stage}/__init__.py")


@pytest.mark.parametrize("bare", ["data", "train", "export", "runtime", "bench"])
def test_no_bare_top_level_stage_module(bare: str, tmp_path, monkeypatch) -> None:
    # Run from an empty folder so the checkout itself is not on sys.path.
    monkeypatch.chdir(tmp_path)
    code = (
        f"import importlib.util, sys; sys.path = [p for p in sys.path if p not in ('', '.')]; "
        f"print(importlib.util.find_spec('{bare}') is None)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


@pytest.mark.parametrize("module", ["prodseg.runtime", "prodseg.bench", "prodseg.data", "prodseg.metadata"])
def test_edge_modules_do_not_import_torch(module: str) -> None:
    code = f"import sys, {module}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", f"importing {module} pulled in torch"


def test_version_is_exposed() -> None:
    import prodseg

    assert prodseg.__version__.count(".") == 2


def test_make_test_runs_every_test_folder() -> None:
    """`make test` runs one pytest process per folder: a new tests/<stage>/ must be listed there."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    makefile = (root / "Makefile").read_text().replace("\\\n", " ")  # join continued lines
    listed = set(re.search(r"^TEST_DIRS := (.*)$", makefile, re.M).group(1).split())
    listed.add("tests/benchmarks")  # run on its own, with --benchmark-json
    folders = {f"tests/{p.name}" for p in (root / "tests").iterdir() if any(p.glob("test_*.py"))}
    assert folders == listed


def test_scoring_saved_masks_needs_no_torch() -> None:
    """prodseg-eval --predictions DIR --gt DIR runs on an edge box: its modules leave torch out."""
    code = (
        "import sys, prodseg.train.eval_cli, prodseg.train.evaluate, prodseg.data.check; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
