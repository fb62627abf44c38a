"""Checkpoints: weights_only round trip, RNG states, atomic writes, clear errors for bad files."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from prodseg.config import load_config
from prodseg.errors import BadInput
from prodseg.train.checkpoint import (
    build_checkpoint,
    load_checkpoint,
    model_from_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from prodseg.train.models import build_model

NAMES = ["background", "a", "b"]
COLORS = [[0, 0, 0], [255, 0, 0], [0, 255, 0]]


def tiny_cfg(arch="deeplabv3plus"):
    return load_config(
        None,
        {
            "model.architecture": arch,
            "model.backbone": "resnet18",
            "model.num_classes": 3,
            "model.decoder_channels": [16, 16, 16, 16, 16],
        },
    )


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    cfg = tiny_cfg()
    torch.manual_seed(0)
    model = build_model(cfg.model)
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    save_checkpoint(path, build_checkpoint(model, cfg, NAMES, COLORS, epoch=3, global_step=12))
    return path, model


def test_rng_states_round_trip():
    state = rng_state()
    first = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(state)
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1]) and first[2] == again[2]


def test_checkpoint_loads_with_weights_only_and_rebuilds_the_model(saved):
    path, model = saved
    raw = torch.load(path, weights_only=True)  # the contract: no arbitrary unpickling needed
    assert raw["arch"] == "deeplabv3plus" and raw["epoch"] == 3 and raw["class_names"] == NAMES
    rebuilt, cfg, ckpt = model_from_checkpoint(path)
    assert cfg.model.num_classes == 3 and not rebuilt.training
    for (k, a), (_, b) in zip(model.state_dict().items(), rebuilt.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


def test_missing_corrupt_and_foreign_files_are_bad_input(tmp_path, saved):
    with pytest.raises(BadInput, match="nope.pt: checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(saved[0].read_bytes()[:5000])
    with pytest.raises(BadInput, match="truncated.pt: not a readable checkpoint"):
        load_checkpoint(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(BadInput, match="foreign.pt: not a prodseg checkpoint"):
        load_checkpoint(foreign)
    truncated.write_bytes(b"")
    with pytest.raises(BadInput, match="truncated.pt: not a readable checkpoint"):
        load_checkpoint(truncated)


def test_weights_of_another_architecture_are_a_clear_error(tmp_path, saved):
    ckpt = load_checkpoint(saved[0])
    ckpt["model"] = build_model(tiny_cfg("unet").model).state_dict()  # UNet weights under a DeepLabV3+ config
    bad = save_checkpoint(tmp_path / "mixed.pt", ckpt)
    with pytest.raises(BadInput, match=r"mixed.pt holds a deeplabv3plus model whose weights do not match"):
        model_from_checkpoint(bad)


def test_a_failed_write_leaves_the_previous_checkpoint(tmp_path, saved, monkeypatch):
    target = tmp_path / "last.pt"
    target.write_bytes(saved[0].read_bytes())
    before = target.read_bytes()

    def explode(obj, f):
        open(f, "wb").write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", explode)
    with pytest.raises(OSError):
        save_checkpoint(target, load_checkpoint(saved[0]))
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary left behind


@pytest.mark.parametrize("key", ["config", "model", "arch", "class_names"])
def test_a_checkpoint_missing_what_consumers_read_is_bad_input(tmp_path, saved, key):
    ckpt = load_checkpoint(saved[0])
    del ckpt[key]
    cut = save_checkpoint(tmp_path / "cut.pt", ckpt)
    with pytest.raises(BadInput, match=f"cut.pt: a prodseg checkpoint without valid {key}"):
        model_from_checkpoint(cut)
