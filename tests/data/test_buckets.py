"""Aspect buckets: exact shapes and assignment, per-epoch determinism, DDP sharding, letterboxing, and a
one-epoch training run on a dataset of two aspects."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from prodseg.data.buckets import (
    BucketBatchSampler,
    assign_buckets,
    bucket_shapes,
    merge_small,
    scaled_batch,
)
from prodseg.data.imageio import read_image, read_mask, write_mask
from prodseg.data.torch_datasets import GroceryShelfDataset, bucket_sampler, letterbox

SHAPES_256 = [(352, 192), (320, 224), (256, 256), (224, 320), (192, 352)]


def test_bucket_shapes_keep_the_area_in_multiples_of_32() -> None:
    assert bucket_shapes((256, 256)) == SHAPES_256
    assert bucket_shapes((64, 64)) == [(96, 32), (64, 64), (32, 96)]  # 2:3 and 3:2 round to the square
    for h, w in SHAPES_256:
        assert h % 32 == 0 and w % 32 == 0 and abs(h * w / 256**2 - 1) < 0.1


def test_each_image_goes_to_the_bucket_of_its_aspect() -> None:
    sizes = [(100, 100), (480, 640), (1080, 1920), (640, 480), (1000, 300), (300, 1000), (700, 1000)]
    assert assign_buckets(sizes, SHAPES_256) == [2, 3, 4, 1, 0, 4, 3]


def test_a_bucket_of_one_image_joins_the_nearest_bucket() -> None:
    assert merge_small([0, 1, 1, 1, 4, 4], SHAPES_256) == [1, 1, 1, 1, 4, 4]
    assert merge_small([2, 2, 2], SHAPES_256) == [2, 2, 2]
    assert merge_small([3], SHAPES_256) == [3]  # nowhere to go


def test_batch_size_scales_with_the_bucket_area() -> None:
    assert scaled_batch(8, (256, 256), (224, 320)) == 7  # 8 * 65536 / 71680 = 7.3
    assert scaled_batch(8, (256, 256), (256, 256)) == 8
    assert scaled_batch(4, (64, 64), (32, 96)) == 5  # 4 * 4096 / 3072 = 5.3
    assert scaled_batch(1, (256, 256), (512, 512)) == 1


BUCKETS = [0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2]
SIZES = [2, 2, 3]


def test_batches_are_deterministic_per_epoch_and_cover_each_image_once() -> None:
    a, b = BucketBatchSampler(BUCKETS, SIZES, seed=3), BucketBatchSampler(BUCKETS, SIZES, seed=3)
    for epoch in (1, 2):
        a.set_epoch(epoch)
        b.set_epoch(epoch)
        assert list(a) == list(b)
        assert sorted(i for batch in a for i in batch) == list(range(len(BUCKETS)))
        for batch in a:
            assert len({BUCKETS[i] for i in batch}) == 1  # one bucket per batch
            assert len(batch) > 1  # a trailing single image joined the batch before it
    assert a.batches(1) != a.batches(2)
    assert BucketBatchSampler(BUCKETS, SIZES, seed=4).batches(1) != a.batches(1)


@pytest.mark.parametrize("world", [2, 3, 4])
def test_ranks_get_whole_batches_and_the_same_count(world: int) -> None:
    ranks = [BucketBatchSampler(BUCKETS, SIZES, seed=0, rank=r, world=world) for r in range(world)]
    for sampler in ranks:
        sampler.set_epoch(5)
    everything = ranks[0].batches()
    assert len(everything) % world == 0
    assert {len(list(s)) for s in ranks} == {len(everything) // world}
    assert [len(s) for s in ranks] == [len(list(s)) for s in ranks]
    dealt = [batch for s in ranks for batch in s]
    assert sorted(map(tuple, dealt)) == sorted(map(tuple, everything))  # whole batches, none split
    assert set(i for batch in dealt for i in batch) == set(range(len(BUCKETS)))


@pytest.mark.parametrize("world", [1, 2, 3])
def test_validation_batches_count_each_image_exactly_once(world: int) -> None:
    ranks = [BucketBatchSampler(BUCKETS, SIZES, rank=r, world=world, shuffle=False) for r in range(world)]
    seen = Counter(i for s in ranks for batch in s for i in batch)
    assert seen == Counter(range(len(BUCKETS)))


def test_letterbox_keeps_the_aspect_and_pads_with_ignore() -> None:
    image = np.full((50, 100, 3), 200, np.uint8)
    mask = np.full((50, 100), 3, np.uint8)
    out = letterbox({"image": image, "mask": mask, "instances": mask.astype(np.uint16)}, (64, 96))
    assert out["image"].shape == (64, 96, 3) and out["mask"].shape == (64, 96)
    assert (out["image"][:48] == 200).all() and (out["image"][48:] == 0).all()  # 50x100 -> 48x96
    assert (out["mask"][:48] == 3).all() and (out["mask"][48:] == 255).all()
    assert (out["instances"][48:] == 0).all()


@pytest.fixture(scope="module")
def two_aspects(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 synthetic 64x128 (landscape) images, every other one transposed to 128x64 (portrait)."""
    from prodseg.data.synth import generate_dataset

    root = generate_dataset(tmp_path_factory.mktemp("aspects") / "data", images=10, size=(64, 128), seed=2)
    for k, image_path in enumerate(sorted((root / "images").iterdir())):
        if k % 2:
            mask_path = root / "masks" / f"{image_path.stem}.png"
            image = cv2.cvtColor(read_image(image_path), cv2.COLOR_RGB2BGR)
            cv2.imwrite(str(image_path), np.ascontiguousarray(image.transpose(1, 0, 2)))
            write_mask(mask_path, np.ascontiguousarray(read_mask(mask_path).T))
    shutil.rmtree(root / "labels", ignore_errors=True)
    return root


def test_the_dataset_serves_each_image_at_its_bucket_shape(two_aspects: Path) -> None:
    ds = GroceryShelfDataset(two_aspects, "train", size=(64, 64))
    sampler = bucket_sampler(ds, batch=2, seed=0, rank=0, world=1, train=True)
    shapes = set()
    for batch in sampler:
        items = [ds[i] for i in batch]
        assert len({tuple(item["image"].shape) for item in items}) == 1
        shapes.add(tuple(items[0]["mask"].shape))
    assert shapes == {(32, 96), (96, 32)}
    assert sampler.batch_sizes == [3, 2, 3]  # 2 * 4096 / 3072 = 2.7 for the two oblong buckets


def test_one_epoch_trains_on_two_aspects(two_aspects: Path, tmp_path: Path) -> None:
    from prodseg.config import load_config
    from prodseg.train.cli import resolve_config_path
    from prodseg.train.fit import fit

    cfg = load_config(
        resolve_config_path("fast_cpu"),
        {
            "model.architecture": "unet",
            "data.root": str(two_aspects),
            "data.image_size": 64,
            "data.bucket_by_aspect": True,
            "training.hyperparameters.batch_size": 2,
            "training.hyperparameters.num_epochs": 1,
            "training.hyperparameters.amp": False,
            "training.hyperparameters.precise_bn_batches": 2,
            "training.device": "cpu",
            "logging.out_dir": str(tmp_path / "out"),
            "logging.mlflow": False,
            "logging.tensorboard": False,
        },
    )
    seen: list[tuple[int, ...]] = []

    def first_batches(run, row) -> None:
        seen.extend(tuple(b["image"].shape[-2:]) for b in run.train_loader)
        seen.extend(tuple(b["mask"].shape[-2:]) for b in run.val_loader)

    result = fit(cfg, progress=False, on_epoch_end=first_batches)
    assert set(seen) == {(32, 96), (96, 32)}
    assert np.isfinite(result.history[-1]["val/miou"]) and np.isfinite(result.history[-1]["train/loss"])
    ckpt = torch.load(result.run_dir / "last.pt", weights_only=True)
    assert ckpt["config"]["data"]["bucket_by_aspect"] is True and ckpt["epoch"] == 1
