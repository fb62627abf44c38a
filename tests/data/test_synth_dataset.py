"""Synthetic shelf photos: determinism, taxonomy coverage, masks vs instances, the dataset folder, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from prodseg.data.formats.coco import read_coco
from prodseg.data.imageio import read_image, read_mask
from prodseg.data.instances import semantic_from_instances
from prodseg.data.layout import ShelfDataset
from prodseg.data.synth import generate_dataset, parse_size
from prodseg.data.synth.commands import synth
from prodseg.data.synth.render import image_rng, render_photo
from prodseg.data.taxonomy import SHELF10
from prodseg.errors import BadInput


def test_same_seed_same_arrays_different_seed_different() -> None:
    a, b = render_photo((64, 96), image_rng(3, 5)), render_photo((64, 96), image_rng(3, 5))
    c = render_photo((64, 96), image_rng(4, 5))
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
    assert np.array_equal(a.ids, b.ids)
    assert not np.array_equal(a.image, c.image)
    assert not np.array_equal(a.mask, c.mask)


def test_every_shelf10_class_appears_over_a_few_images() -> None:
    seen = set()
    for i in range(12):
        seen |= set(np.unique(render_photo((96, 128), image_rng(0, i)).mask).tolist())
    assert seen == set(range(SHELF10.num_classes))


def test_instances_reproduce_the_mask_and_do_not_overlap() -> None:
    for i in range(4):
        shot = render_photo((96, 128), image_rng(1, i))
        insts = shot.instances()
        assert len(insts) > 10
        assert np.array_equal(semantic_from_instances(insts, shot.mask.shape), shot.mask)
        assert np.stack([x.mask for x in insts]).sum(0).max() == 1
        assert all(1 <= x.class_id < SHELF10.num_classes for x in insts)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31), index=st.integers(0, 10**6), h=st.integers(16, 80), w=st.integers(16, 120))
def test_any_seed_and_size_gives_valid_consistent_labels(seed: int, index: int, h: int, w: int) -> None:
    shot = render_photo((h, w), image_rng(seed, index))
    assert shot.image.shape == (h, w, 3) and shot.image.dtype == np.uint8
    assert shot.mask.shape == (h, w) and shot.mask.max() < SHELF10.num_classes
    assert np.array_equal(semantic_from_instances(shot.instances(), (h, w)), shot.mask)


def test_tiny_dataset_folder_is_complete(tiny_dataset: Path) -> None:
    ds = ShelfDataset(tiny_dataset)
    assert ds.classes == SHELF10
    assert len(ds.stems) == 12
    train, val = ds.split_stems("train"), ds.split_stems("val")
    assert len(train) + len(val) == 12 and not set(train) & set(val) and len(val) >= 2
    for s in ds.split("train") + ds.split("val"):
        img, mask = read_image(s.image), read_mask(s.mask)
        assert img.shape == (96, 128, 3) and mask.shape == (96, 128)
        assert mask.max() < SHELF10.num_classes
        assert (tiny_dataset / "labels" / f"{s.stem}.txt").is_file()
    assert (tiny_dataset / "dataset.yaml").is_file()


def test_coco_instances_paint_the_written_masks(tiny_dataset: Path) -> None:
    records, classes = read_coco(tiny_dataset / "instances.json")
    assert len(records) == 12 and classes.names == SHELF10.names
    for rec in records:
        mask = read_mask(tiny_dataset / "masks" / f"{rec.stem}.png")
        assert np.array_equal(semantic_from_instances(rec.instances, mask.shape), mask), rec.file_name


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_generate_dataset_is_byte_identical_per_seed_and_image_i_independent_of_n(tmp_path: Path) -> None:
    a = _files(generate_dataset(tmp_path / "a", images=3, size=64, seed=7))
    b = _files(generate_dataset(tmp_path / "b", images=3, size=64, seed=7))
    assert a == b
    c = _files(generate_dataset(tmp_path / "c", images=2, size=64, seed=7))
    for name in ("images/shelf_000001.jpg", "masks/shelf_000001.png"):
        assert c[name] == a[name]
    d = _files(generate_dataset(tmp_path / "d", images=3, size=64, seed=8))
    assert d["images/shelf_000000.jpg"] != a["images/shelf_000000.jpg"]


@pytest.mark.parametrize(
    ("size", "hw"), [(64, (64, 64)), ("96", (96, 96)), ("64x128", (64, 128)), ((32, 48), (32, 48))]
)
def test_parse_size(size: object, hw: tuple[int, int]) -> None:
    assert parse_size(size) == hw  # type: ignore[arg-type]


@pytest.mark.parametrize("size", ["abc", "0", "64x", "8x8", -5, (64, 64, 3)])
def test_parse_size_rejects(size: object) -> None:
    with pytest.raises(BadInput, match="size"):
        parse_size(size)  # type: ignore[arg-type]


def test_generate_dataset_rejects_bad_counts(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="images=0"):
        generate_dataset(tmp_path, images=0, size=64, seed=0)
    with pytest.raises(BadInput, match="val_fraction"):
        generate_dataset(tmp_path, images=2, size=64, seed=0, val_fraction=1.5)


def test_cli_synth(tmp_path: Path) -> None:
    res = CliRunner().invoke(synth, [str(tmp_path / "s"), "--images", "3", "--size", "64x96", "--seed", "1"])
    assert res.exit_code == 0, res.output
    assert "3 images" in res.output and "images/s" in res.output
    assert read_image(tmp_path / "s" / "images" / "shelf_000002.jpg").shape == (64, 96, 3)


def test_cli_synth_bad_size_exits_2(tmp_path: Path) -> None:
    res = CliRunner().invoke(synth, [str(tmp_path / "s"), "--size", "abc"])
    assert res.exit_code == 2
    assert "size 'abc'" in res.output
    assert not (tmp_path / "s").exists()


def test_regenerating_in_place_replaces_the_old_dataset(tmp_path: Path) -> None:
    root = generate_dataset(tmp_path / "d", images=3, size=32, seed=0)
    generate_dataset(root, images=2, size=32, seed=1)
    assert sorted(p.name for p in (root / "images").iterdir()) == ["shelf_000000.jpg", "shelf_000001.jpg"]
    assert [p.name for p in tmp_path.iterdir()] == ["d"]  # no temporary folders left behind


def test_foreign_folder_is_refused_and_failures_leave_nothing(tmp_path: Path, monkeypatch) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(BadInput, match="not empty"):
        generate_dataset(mine, images=1, size=32, seed=0)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]

    def boom(*args: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr("prodseg.data.synth.dataset.render_photo", boom)
    with pytest.raises(RuntimeError):
        generate_dataset(tmp_path / "new", images=2, size=32, seed=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]
