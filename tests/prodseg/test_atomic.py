"""Atomic writes: the final name appears only with complete content; failures leave nothing behind."""

from __future__ import annotations

import json
import os
import signal

import pytest

from prodseg.atomic import (
    atomic_dir,
    atomic_path,
    deferred_signals,
    ensure_writable_dir,
    exchange,
    write_bytes,
    write_json,
    write_text,
)
from prodseg.errors import BadInput


def test_write_helpers_create_parents_and_return_the_target(tmp_path) -> None:
    assert write_bytes(tmp_path / "a" / "b.bin", b"\x00\x01") == tmp_path / "a" / "b.bin"
    assert (tmp_path / "a" / "b.bin").read_bytes() == b"\x00\x01"
    write_text(tmp_path / "t.txt", "héllo")
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "héllo"
    write_json(tmp_path / "j.json", {"b": 1, "a": [1, 2]})
    assert (tmp_path / "j.json").read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'
    assert json.loads((tmp_path / "j.json").read_text()) == {"a": [1, 2], "b": 1}


def test_temporary_name_is_hidden_beside_the_target_and_keeps_the_extension(tmp_path) -> None:
    with atomic_path(tmp_path / "model.onnx") as tmp:
        assert tmp.parent == tmp_path
        assert tmp.name.startswith(".model.") and tmp.name.endswith(".tmp.onnx")
        assert not (tmp_path / "model.onnx").exists()
        tmp.write_bytes(b"x")
    assert (tmp_path / "model.onnx").read_bytes() == b"x"
    assert os.listdir(tmp_path) == ["model.onnx"]


def test_failure_leaves_no_file_and_keeps_the_old_one(tmp_path) -> None:
    (tmp_path / "best.pt").write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "best.pt") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert (tmp_path / "best.pt").read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["best.pt"]


class Unprintable:
    def __str__(self) -> str:
        raise TypeError("cannot serialise")


def test_unserialisable_json_leaves_nothing(tmp_path) -> None:
    with pytest.raises(TypeError):
        write_json(tmp_path / "r.json", {"k": Unprintable()})
    assert os.listdir(tmp_path) == []


def test_ensure_writable_dir(tmp_path) -> None:
    assert ensure_writable_dir(tmp_path / "x" / "y").is_dir()
    (tmp_path / "file").write_text("")
    with pytest.raises(BadInput, match="file/sub: cannot create the output folder"):
        ensure_writable_dir(tmp_path / "file" / "sub")


def test_atomic_file_gets_umask_mode_not_mkstemp_0600(tmp_path) -> None:
    import os
    import stat

    from prodseg.atomic import write_text

    old = os.umask(0o022)
    try:
        path = write_text(tmp_path / "report.md", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_atomic_dir_swaps_a_whole_folder_in_one_step_and_leaves_no_temporaries(tmp_path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("new")
        assert (target / "old.txt").exists()  # the old set stays until the new one is complete
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "in_a").touch()
    assert exchange(a, b) and (b / "in_a").exists() and not (a / "in_a").exists()


def test_a_failed_atomic_dir_keeps_the_old_folder(tmp_path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("new")
        raise RuntimeError("failed half-way")
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and (target / "old.txt").read_text() == "old"


def test_deferred_signals_hold_ctrl_c_until_the_block_ends() -> None:
    # a background job (CI may run the tests as one) starts with SIGINT ignored: act as a terminal would
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    reached_end = False
    try:
        with pytest.raises(KeyboardInterrupt):
            with deferred_signals():
                os.kill(os.getpid(), signal.SIGINT)
                reached_end = True
    finally:
        signal.signal(signal.SIGINT, previous)
    assert reached_end
