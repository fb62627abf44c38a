"""`prodseg-data convert|check`: exit 0 on success, 1 on dataset problems, 2 on bad input, one-line errors."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from prodseg.data.cli import main
from tests.data.formats_builders import build_dataset


@pytest.fixture
def ds(tmp_path):
    build_dataset(tmp_path / "ds")
    return tmp_path / "ds"


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_check_clean_exits_0(ds) -> None:
    r = run("check", ds)
    assert r.exit_code == 0, r.output
    assert r.output.strip() == f"ok: {ds} (images 3, masks 3, train 2, val 1)"


def test_check_problems_exit_1_one_per_line(ds) -> None:
    (ds / "masks" / "img0.png").unlink()
    (ds / "splits" / "val.txt").write_text("")
    r = run("check", ds)
    assert r.exit_code == 1
    lines = r.output.strip().splitlines()
    assert lines[0] == f"{ds / 'masks' / 'img0.png'}: mask missing for image img0.png"
    assert lines[1] == f"{ds / 'splits' / 'val.txt'}: split is empty"
    assert lines[2] == f"error: {ds}: 2 problem(s) (images 3, masks 2, train 2, val 0)"


def test_check_missing_folder_exits_2(tmp_path) -> None:
    r = run("check", tmp_path / "none")
    assert r.exit_code == 2
    assert r.output.strip() == f"error: {tmp_path / 'none'}: dataset folder not found"


def test_convert_round_trip_exit_0(ds, tmp_path) -> None:
    r = run("convert", "--from", "prodseg", ds, "--to", tmp_path / "c", "--to-format", "coco")
    assert r.exit_code == 0, r.output
    assert r.output.strip() == f"wrote coco dataset {tmp_path / 'c'} from prodseg {ds}"
    r = run("convert", "--from", "coco", tmp_path / "c", "--to", tmp_path / "b")
    assert r.exit_code == 0, r.output
    assert run("check", tmp_path / "b").exit_code == 0


def test_convert_unknown_format_exits_2_listing_choices(ds, tmp_path) -> None:
    r = run("convert", "--from", "pascal", ds, "--to", tmp_path / "x")
    assert r.exit_code == 2
    assert (
        "'pascal' is not one of 'auto', 'coco', 'yolo', 'color-masks', 'voc', 'labelme', 'prodseg'"
        in r.output
    )


def test_convert_bad_source_exits_2_with_one_line(tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2")
    r = run("convert", "--from", "coco", bad, "--to", tmp_path / "x")
    assert r.exit_code == 2
    assert r.output.count("\n") == 1 and r.output.startswith(f"error: {bad}: not valid JSON")
    assert not (tmp_path / "x").exists()


def test_convert_into_non_empty_folder_exits_2(ds, tmp_path) -> None:
    r = run("convert", "--from", "prodseg", ds, "--to", ds)
    assert r.exit_code == 2
    assert "already exists and is not an empty folder" in r.output
