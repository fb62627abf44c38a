"""FSDP2 (`training.distributed.strategy: fsdp`): the optimizer-state layout conversion, the sharding units,
and a torchrun run on 2 gloo processes whose weights and optimizer state after 2 steps equal DDP's, saved
in the same single-file checkpoint (which then resumes under FSDP)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from prodseg.train import distributed
from prodseg.train.checkpoint import load_checkpoint
from tests.train.test_distributed import _train


def _stepped() -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Sequential(nn.Conv2d(4, 2, 1)))
    optimizer = torch.optim.AdamW(
        [
            {"params": model[0].parameters()},
            {"params": [*model[1].parameters(), *model[2].parameters()], "lr": 0.1},
        ]
    )
    model(torch.randn(2, 3, 4, 4)).sum().backward()
    optimizer.step()
    return model, optimizer


def test_optimizer_state_by_name_and_by_index_round_trip() -> None:
    model, optimizer = _stepped()
    indexed = optimizer.state_dict()
    named = distributed.named_optimizer_state(indexed, model, optimizer)
    assert named["param_groups"][0]["params"] == ["0.weight", "0.bias"]
    assert named["param_groups"][1]["params"] == ["1.weight", "1.bias", "2.0.weight", "2.0.bias"]
    assert sorted(named["state"]) == sorted(n for n, _ in model.named_parameters())
    back = distributed.indexed_optimizer_state(named)
    assert back["param_groups"] == indexed["param_groups"]
    for i, state in indexed["state"].items():
        for key, value in state.items():
            assert torch.equal(back["state"][i][key], value)


def test_sharding_units_are_the_blocks_of_sequentials() -> None:
    inner = nn.Sequential(nn.Conv2d(4, 4, 1), nn.Conv2d(4, 2, 1))
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), inner)
    units: list[nn.Module] = []
    assert distributed.shard_blocks(model, units.append) == 2
    assert units == [model[0], model[2]]  # parameterised children; the ReLU has nothing to shard


def test_single_process_leaves_the_model_and_state_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in distributed.TORCHRUN_ENV:
        monkeypatch.delenv(key, raising=False)
    model, optimizer = _stepped()
    assert distributed.wrap(model, torch.device("cpu"), False, "fsdp") is model
    assert not distributed.is_sharded(model)
    same, state = distributed.full_state(model, optimizer)
    assert same is model and state["param_groups"] == optimizer.state_dict()["param_groups"]
    with distributed.gathered(model):
        assert not torch.is_grad_enabled()


# test_distributed's torchrun training runs, from the fast_cpu config at a batch that splits over 2 ranks
FSDP_RUN = ["--config", "fast_cpu", "--batch-size", "4"]


def _torchrun(args: list[str], cwd: Path) -> None:
    _train([*FSDP_RUN, *args], torchrun=True, cwd=cwd)


@pytest.mark.slow
def test_fsdp_matches_ddp_after_two_steps_and_resumes(tmp_path: Path) -> None:
    """8 training images, global batch 4: two optimizer steps. FSDP reduce-scatters what DDP all-reduces
    (each rank's gradient halved and summed), so both runs agree to float32 rounding."""
    from prodseg.data.synth import generate_dataset

    data = generate_dataset(tmp_path / "data", images=10, size=64, seed=5)
    for strategy in ("ddp", "fsdp"):
        _torchrun(
            ["--data", str(data), "--epochs", "1", "--strategy", strategy, "--out", str(tmp_path / strategy)],
            tmp_path,
        )
    (ddp,) = (tmp_path / "ddp").glob("unet-*/last.pt")
    (fsdp,) = (tmp_path / "fsdp").glob("unet-*/last.pt")
    a, b = load_checkpoint(ddp), load_checkpoint(fsdp)  # the same single-file format
    assert a["global_step"] == b["global_step"] == 2
    assert b["config"]["training"]["distributed"]["strategy"] == "fsdp"
    assert a["model"].keys() == b["model"].keys()
    for key, value in a["model"].items():
        torch.testing.assert_close(b["model"][key], value, atol=1e-6, rtol=0, msg=key)
    assert a["optimizer"]["param_groups"] == b["optimizer"]["param_groups"]
    assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()
    for i, state in a["optimizer"]["state"].items():
        for key, value in state.items():
            torch.testing.assert_close(b["optimizer"]["state"][i][key], value, atol=1e-6, rtol=0)

    _torchrun(["--data", str(data), "--epochs", "2", "--strategy", "fsdp", "--resume", str(fsdp)], tmp_path)
    resumed = load_checkpoint(fsdp)
    assert (resumed["epoch"], resumed["global_step"]) == (2, 4)
    assert all(torch.isfinite(v.float()).all() for v in resumed["model"].values())
