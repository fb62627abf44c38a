"""Output folders: what a failed start created is removed again; work worth keeping stays."""

from __future__ import annotations

from pathlib import Path

import pytest

from prodseg.train.outputs import first_missing, removed_on_failure


def test_first_missing_names_the_outermost_folder_that_creating_would_make(tmp_path: Path) -> None:
    assert first_missing(tmp_path) is None
    assert first_missing(tmp_path / "a" / "b" / "c") == tmp_path / "a"


def test_a_failed_start_removes_the_run_folder_and_the_folders_it_created(tmp_path: Path) -> None:
    out = tmp_path / "a" / "runs"
    created = first_missing(out)
    run = out / "run-1"
    with pytest.raises(RuntimeError), removed_on_failure(run, created, keep=lambda: False):
        (run / "tensorboard").mkdir(parents=True)
        raise RuntimeError("the first validation failed")
    assert list(tmp_path.iterdir()) == []


def test_folders_holding_other_work_stay(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    created = first_missing(out)
    (out / "other-run").mkdir(parents=True)  # e.g. a parallel tuning worker's trial
    run = out / "run-1"
    with pytest.raises(RuntimeError), removed_on_failure(run, created, keep=lambda: False):
        run.mkdir()
        raise RuntimeError("boom")
    assert sorted(p.name for p in out.iterdir()) == ["other-run"]


def test_a_run_with_a_checkpoint_or_that_succeeded_is_kept(tmp_path: Path) -> None:
    run = tmp_path / "run-1"
    with pytest.raises(RuntimeError), removed_on_failure(run, None, keep=lambda: (run / "last.pt").exists()):
        run.mkdir()
        (run / "last.pt").write_bytes(b"ckpt")
        raise RuntimeError("diverged at epoch 2")
    assert (run / "last.pt").is_file()
    with removed_on_failure(tmp_path / "run-2", None, keep=lambda: False):
        (tmp_path / "run-2").mkdir()
    assert (tmp_path / "run-2").is_dir()
