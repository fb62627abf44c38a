"""The dataset folder contract: ShelfDataset, splits and their errors."""

from __future__ import annotations

import numpy as np
import pytest

from prodseg.data.imageio import write_image, write_mask
from prodseg.data.layout import ShelfDataset, make_splits, write_splits
from prodseg.data.taxonomy import SHELF10
from prodseg.errors import BadInput


@pytest.fixture
def root(tmp_path):
    for stem in ("b", "a", "c"):
        write_image(tmp_path / "images" / f"{stem}.jpg", np.zeros((8, 8, 3), np.uint8))
        write_mask(tmp_path / "masks" / f"{stem}.png", np.zeros((8, 8), np.uint8))
    (tmp_path / "images" / "notes.txt").write_text("")
    SHELF10.save(tmp_path / "classes.yaml")
    write_splits(tmp_path, {"train": ["a", "b"], "val": ["c"]})
    return tmp_path


def test_view_of_a_folder(root) -> None:
    ds = ShelfDataset(root)
    assert ds.classes == SHELF10
    assert ds.stems == ["a", "b", "c"]
    assert ds.split_stems("train") == ["a", "b"]
    assert ds.split_stems("all") == ["a", "b", "c"]
    assert [(s.stem, s.image.name, s.mask.name) for s in ds.split("val")] == [("c", "c.jpg", "c.png")]
    assert (root / "splits" / "train.txt").read_text() == "a\nb\n"


def test_missing_pieces(root, tmp_path) -> None:
    with pytest.raises(BadInput, match="dataset folder not found; create one with `prodseg-data synth DIR`"):
        ShelfDataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInput, match="no images/ folder"):
        ShelfDataset(tmp_path / "empty")
    ds = ShelfDataset(root)
    with pytest.raises(BadInput, match=r"split 'test' not found; available: train, val \(or 'all'\)"):
        ds.split_stems("test")
    with pytest.raises(BadInput, match="no image named 'zz'"):
        ds.sample("zz")
    (root / "masks" / "b.png").unlink()
    assert ds.sample("b").mask is None
    with pytest.raises(BadInput, match="b.png: mask missing for image b.jpg"):
        ds.split("train")
    (root / "classes.yaml").unlink()
    with pytest.raises(BadInput, match="classes.yaml is missing"):
        ShelfDataset(root)


@pytest.mark.parametrize(
    "n, val, test, sizes",
    [
        (10, 0.2, 0.0, (8, 2, None)),
        (10, 0.2, 0.1, (7, 2, 1)),
        (3, 0.2, 0.0, (2, 1, None)),
        (1, 0.2, 0.0, (1, 0, None)),
        (5, 0.0, 0.0, (5, 0, None)),
    ],
)
def test_make_splits_sizes(n: int, val: float, test: float, sizes) -> None:
    stems = [f"s{i}" for i in range(n)]
    out = make_splits(stems, val, test)
    assert (len(out["train"]), len(out["val"]), len(out["test"]) if "test" in out else None) == sizes
    assert sum(out.values(), []) == stems  # by position, no overlap, nothing lost


def test_entries_stay_inside_the_dataset(tmp_path) -> None:
    from prodseg.data.layout import check_tree, entry, inside

    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    (tmp_path / "secret.png").write_bytes(b"x")
    (root / "images" / "a.png").write_bytes(b"x")
    assert entry(root, root / "images", "../images/a.png", "e") == root / "images" / "../images/a.png"
    with pytest.raises(BadInput, match="e: resolves to .*secret.png', outside the dataset folder"):
        entry(root, root / "images", "../../secret.png", "e")
    with pytest.raises(BadInput, match="e: is an absolute path"):
        entry(root, root, str(root / "images" / "a.png"), "e")
    (root / "images" / "in.png").symlink_to(root / "images" / "a.png")
    check_tree(root)
    (root / "images" / "out.png").symlink_to(tmp_path / "secret.png")
    with pytest.raises(BadInput, match="out.png: resolves to"):
        inside(root, root / "images" / "out.png", str(root / "images" / "out.png"))
    with pytest.raises(BadInput, match="out.png: resolves to"):
        check_tree(root)
