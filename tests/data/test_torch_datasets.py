"""Torch datasets: item shapes and dtypes, normalisation, instance maps, caching, workers, video clips."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Subset

from prodseg.config import AugmentationConfig
from prodseg.data.imageio import read_image, read_mask
from prodseg.data.torch_datasets import IMAGENET_MEAN, IMAGENET_STD, GroceryShelfDataset, VideoFrameDataset
from prodseg.errors import BadInput

# Workers are spawned, not forked: this pytest process also holds OpenVINO/ONNX Runtime thread pools
# from other tests, and forking it intermittently crashed the suite. prodseg-train forks as usual.
SPAWN = "spawn"

STRONG = AugmentationConfig(rotation=30.0, scale=[0.6, 1.4], vertical_flip=0.5)


def test_item_shapes_dtypes_and_exact_normalisation(tiny_dataset: Path) -> None:
    ds = GroceryShelfDataset(tiny_dataset, "val", size=(96, 128))
    item = ds[0]
    assert item["image"].shape == (3, 96, 128) and item["image"].dtype == torch.float32
    assert item["mask"].shape == (96, 128) and item["mask"].dtype == torch.int64
    sample = ds.samples[0]
    assert item["stem"] == sample.stem
    expected = (read_image(sample.image) / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(item["image"].permute(1, 2, 0).numpy(), expected, atol=1e-5)
    assert np.array_equal(item["mask"].numpy(), read_mask(sample.mask))


def test_resized_train_items(tiny_dataset: Path) -> None:
    ds = GroceryShelfDataset(tiny_dataset, "train", size=(64, 80), augmentation=STRONG, train=True)
    assert len(ds) == 10
    for i in range(len(ds)):
        item = ds[i]
        assert item["image"].shape == (3, 64, 80) and item["mask"].shape == (64, 80)
        values = set(item["mask"].unique().tolist())
        assert values <= set(range(10)) | {255}


@pytest.mark.parametrize("train", [False, True])
def test_instances_follow_the_mask(tiny_dataset: Path, train: bool) -> None:
    ds = GroceryShelfDataset(
        tiny_dataset, "train", size=(64, 80), augmentation=STRONG, train=train, with_instances=True
    )
    for i in range(4):
        item = ds[i]
        ids, mask = item["instances"], item["mask"]
        assert ids.shape == mask.shape and ids.dtype == torch.int64
        # Every synthetic object is an instance: instance pixels are exactly the labelled, non-ignored ones.
        assert torch.equal(ids > 0, (mask > 0) & (mask != 255))
        for k in ids.unique()[1:]:
            assert mask[ids == k].unique().numel() == 1  # one class per instance


def test_cache_returns_the_same_items(tiny_dataset: Path) -> None:
    a = GroceryShelfDataset(tiny_dataset, "val", size=(48, 64), cache=True)
    b = GroceryShelfDataset(tiny_dataset, "val", size=(48, 64))
    for i in range(len(a)):
        assert torch.equal(a[i]["image"], b[i]["image"]) and torch.equal(a[i]["mask"], b[i]["mask"])
    assert len(a._cache) == len(a)  # decoded once, kept
    assert torch.equal(a[0]["image"], b[0]["image"])


def test_two_workers_load_everything_with_distinct_augmentations(tiny_dataset: Path) -> None:
    ds = GroceryShelfDataset(tiny_dataset, "train", size=(64, 64), augmentation=STRONG, train=True)
    loader = DataLoader(ds, batch_size=4, num_workers=2, multiprocessing_context=SPAWN)
    stems = [s for batch in loader for s in batch["stem"]]
    assert sorted(stems) == sorted(s.stem for s in ds.samples)
    # The same image through both workers: without per-worker seeding they would augment identically.
    loader = DataLoader(Subset(ds, [0, 0, 0, 0]), batch_size=1, num_workers=2, multiprocessing_context=SPAWN)
    images = [b["image"][0] for b in loader]
    assert not torch.equal(images[0], images[1])


def test_bad_split_and_missing_instances(tiny_dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="split 'nope'"):
        GroceryShelfDataset(tiny_dataset, "nope")
    with pytest.raises(BadInput, match="mean"):
        GroceryShelfDataset(tiny_dataset, "val", mean=(0.5,))
    copy = shutil.copytree(tiny_dataset, tmp_path / "d")
    (copy / "instances.json").unlink()
    GroceryShelfDataset(copy, "val")  # semantic training needs no instances
    with pytest.raises(BadInput, match="instances.json: missing"):
        GroceryShelfDataset(copy, "val", with_instances=True)


def _decode_all(path: Path) -> list[np.ndarray]:
    cap, out = cv2.VideoCapture(str(path)), []
    while True:
        ok, f = cap.read()
        if not ok:
            return out
        out.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))


def test_video_clips(tiny_video: tuple[Path, Path]) -> None:
    path, masks = tiny_video
    ds = VideoFrameDataset(path, clip_length=8, stride=4, masks_dir=masks)
    assert len(ds) == 5 and ds.starts == [0, 4, 8, 12, 16]
    item = ds[2]  # random access first: a seek
    assert item["start"] == 8
    assert item["frames"].shape == (8, 3, 96, 160) and item["frames"].dtype == torch.float32
    assert item["masks"].shape == (8, 96, 160) and item["masks"].dtype == torch.int64
    frames = _decode_all(path)
    expected = (frames[8] / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(item["frames"][0].permute(1, 2, 0).numpy(), expected, atol=1e-5)
    assert np.array_equal(item["masks"][7].numpy(), read_mask(masks / "000015.png"))


def test_video_clips_resized_and_loaded_by_workers(tiny_video: tuple[Path, Path]) -> None:
    path, masks = tiny_video
    ds = VideoFrameDataset(path, clip_length=6, size=(48, 80), masks_dir=masks)
    batches = list(DataLoader(ds, batch_size=2, num_workers=2, multiprocessing_context=SPAWN))
    assert [b["frames"].shape for b in batches] == [(2, 6, 3, 48, 80)] * 2
    assert torch.cat([b["start"] for b in batches]).tolist() == [0, 6, 12, 18]
    assert set(torch.cat([b["masks"] for b in batches]).unique().tolist()) <= set(range(10))


def test_video_bad_inputs(tiny_video: tuple[Path, Path], tmp_path: Path) -> None:
    path, _ = tiny_video
    with pytest.raises(BadInput, match="fewer than clip_length=30"):
        VideoFrameDataset(path, clip_length=30)
    (tmp_path / "m").mkdir()
    with pytest.raises(BadInput, match="000000.png: mask missing"):
        VideoFrameDataset(path, clip_length=4, masks_dir=tmp_path / "m")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(path.read_bytes()[:300])
    with pytest.raises(BadInput, match="broken.mp4"):
        VideoFrameDataset(broken)
    with pytest.raises(BadInput, match="not found"):
        VideoFrameDataset(tmp_path / "none.mp4")
