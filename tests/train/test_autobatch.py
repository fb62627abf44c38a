"""batch_size auto: the plan (exact), the memory line (exact), the real probe on the CPU, a forced small
budget kept through accumulation over one trained epoch, and out-of-memory stops that keep last.pt."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from prodseg.config import load_config
from prodseg.errors import ConfigError
from prodseg.train import autobatch
from prodseg.train.autobatch import BatchChoice, fitting_batch, plan_batch
from prodseg.train.cli import build_config
from prodseg.train.cli import main as train_main

# fits, target, configured accumulation, world, cap -> (per-process batch, accumulation)
PLANS = [
    (10, None, 1, 1, 64, (10, 1)),  # auto alone: what fits
    (100, None, 2, 1, 64, (64, 2)),  # capped; the configured accumulation stays
    (100, None, 1, 1, 6, (6, 1)),  # capped at the dataset
    (2, 8, 1, 1, 64, (2, 4)),  # 8 kept as 2 x 4
    (3, 8, 1, 1, 64, (3, 3)),  # 9: the nearest to 8 with at most 3 per step
    (16, 8, 1, 1, 64, (8, 1)),  # more fits than asked: the target in one step
    (2, 8, 1, 2, 64, (2, 2)),  # two processes: 2 each x 2 ranks x 2 steps
    (0, 4, 1, 1, 64, (1, 4)),
]


@pytest.mark.parametrize("fits, target, accum, world, cap, want", PLANS)
def test_plan(fits, target, accum, world, cap, want) -> None:
    choice = plan_batch(fits, target, accum, world, cap)
    assert (choice.per_rank, choice.accumulate) == want
    if target is not None:
        assert target <= choice.effective < target + choice.batch


def test_memory_line_through_two_probes() -> None:
    assert fitting_batch({2: 300, 4: 500}, 1000) == 9  # 100 fixed + 100 per image
    assert fitting_batch({2: 500, 4: 400}, 1000) == 10  # noise: the cautious line 100 per image
    assert fitting_batch({2: 300, 4: 500}, 150) == 0


def test_the_choice_is_one_line_that_says_what_was_kept() -> None:
    line = BatchChoice(2, 4, 1, 2, 8).line((64, 64), torch.device("cpu"), 2 * 2**30, 0.8)
    assert "\n" not in line
    assert line.startswith("batch_size auto: 2 images of 64x64 fit 0.8 of 2.5 GiB free CPU memory")
    assert line.endswith("batch 2 x 4 accumulation step(s) = effective batch 8 (kept through accumulation)")


@pytest.mark.parametrize("value, want", [("auto", "auto"), ("AUTO", "auto"), (" Auto ", "auto"), (4, 4)])
def test_config_accepts_a_number_or_auto(value, want) -> None:
    cfg = load_config(None, {"training.hyperparameters.batch_size": value})
    assert cfg.training.hyperparameters.batch_size == want


@pytest.mark.parametrize(
    "key, value, phrase",
    [
        ("training.hyperparameters.batch_size", "eight", "batch_size: expected int or 'auto', got 'eight'"),
        ("training.hyperparameters.batch_size", 0, "batch_size: 0 is out of range"),
        ("training.hyperparameters.batch_size", 2.5, "batch_size: expected int or 'auto', got 2.5"),
        ("training.hyperparameters.effective_batch_size", 0, "effective_batch_size: 0 is out of range"),
        (
            "training.batch_memory_fraction",
            0,
            "batch_memory_fraction: 0.0 is out of range (> 0.0 and <= 1.0)",
        ),
        ("training.batch_memory_fraction", 1.5, "batch_memory_fraction: 1.5 is out of range"),
    ],
)
def test_config_refuses(key, value, phrase) -> None:
    with pytest.raises(ConfigError, match=phrase.replace("(", r"\(").replace(")", r"\)")):
        load_config(None, {key: value})


def test_auto_on_the_command_line_keeps_the_configs_effective_batch(tmp_path: Path) -> None:
    hp = build_config("fast_cpu", None, {"batch_size": "auto"}).training.hyperparameters
    assert (hp.batch_size, hp.effective_batch_size) == ("auto", 4)  # fast_cpu's batch
    path = tmp_path / "c.yaml"
    path.write_text("training: {hyperparameters: {batch_size: 6, accumulate_grad_batches: 2}}\n")
    auto = {"batch_size": "auto"}
    assert build_config(str(path), None, auto).training.hyperparameters.effective_batch_size == 12
    path.write_text("training: {hyperparameters: {batch_size: 6, effective_batch_size: 32}}\n")
    assert build_config(str(path), None, auto).training.hyperparameters.effective_batch_size == 32
    assert build_config("fast_cpu", None, {"batch_size": "6"}).training.hyperparameters.batch_size == 6


@pytest.fixture
def tiny_cfg(tiny_dataset: Path, tmp_path: Path):
    def make(**overrides):
        base = {
            "model.architecture": "unet",
            "model.num_classes": 10,
            "data.root": str(tiny_dataset),
            "data.image_size": 64,
            "training.hyperparameters.amp": False,
            "training.device": "cpu",
            "training.hyperparameters.num_epochs": 1,
            "training.hyperparameters.precise_bn_batches": 0,
            "logging.out_dir": str(tmp_path / "out"),
            "logging.mlflow": False,
            "logging.tensorboard": False,
            "data.num_workers": 0,
        }
        return load_config(None, {**base, **overrides})

    return make


def _model_and_precision(cfg):
    from prodseg.train.engine import Precision
    from prodseg.train.losses import build_loss
    from prodseg.train.models import build_model

    model = build_model(cfg.model)
    return model, build_loss(cfg.training, model.num_classes), Precision(torch.device("cpu"), False)


def test_real_probe_fits_the_split_and_leaves_the_model_as_it_was(tiny_cfg) -> None:
    cfg = tiny_cfg(**{"training.hyperparameters.batch_size": "auto"})
    model, criterion, precision = _model_and_precision(cfg)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    resolved = autobatch.resolve(cfg, model, criterion, precision)
    hp = resolved.training.hyperparameters
    train_images = len((Path(cfg.data.root) / "splits" / "train.txt").read_text().split())
    assert (hp.batch_size, hp.accumulate_grad_batches) == (train_images, 1)  # 64² fits: capped at the split
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng)


def test_real_probe_with_no_memory_stops_with_the_remedy(tiny_cfg, monkeypatch) -> None:
    cfg = tiny_cfg(**{"training.hyperparameters.batch_size": "auto"})
    monkeypatch.setitem(autobatch.AVAILABLE, "cpu", lambda device: 1024)
    with pytest.raises(autobatch.OutOfMemory, match=r"not even 2 images of 64x64 fit .*--image-size"):
        autobatch.resolve(cfg, *_model_and_precision(cfg))


def test_a_small_budget_keeps_the_effective_batch_through_accumulation(tiny_cfg, monkeypatch, caplog):
    """The real probe runs; its readings are replaced by a fixed line (100 MB + 50 MB per image) and the
    free memory by 260 MB, so at the 0.8 fraction (208 MB) 2 images fit and the asked 8 become 2 x 4."""
    from prodseg.train.fit import fit

    real = autobatch.measure_footprint
    calls: list[int] = []

    def fake(probe, n, base):
        real(probe, n, base)
        calls.append(n)
        return 100_000_000 + 50_000_000 * n

    monkeypatch.setattr(autobatch, "measure_footprint", fake)
    monkeypatch.setitem(autobatch.AVAILABLE, "cpu", lambda device: 260_000_000)
    cfg = tiny_cfg(
        **{"training.hyperparameters.batch_size": "auto", "training.hyperparameters.effective_batch_size": 8}
    )
    with caplog.at_level("INFO", logger="prodseg.train"):
        result = fit(cfg, progress=False)
    assert calls == [2, 4]
    ckpt = torch.load(result.run_dir / "last.pt", weights_only=True)
    hp = ckpt["config"]["training"]["hyperparameters"]
    assert (hp["batch_size"], hp["accumulate_grad_batches"], hp["effective_batch_size"]) == (2, 4, 8)
    train_images = len((Path(cfg.data.root) / "splits" / "train.txt").read_text().split())
    assert ckpt["epoch"] == 1 and ckpt["global_step"] == -(-(train_images // 2) // 4)
    (line,) = [r.message for r in caplog.records if r.message.startswith("batch_size auto:")]
    assert "2 images of 64x64" in line and "batch 2 x 4 accumulation step(s) = effective batch 8" in line


def quiet_config(folder: Path) -> str:
    """fast_cpu without trackers: MLflow's own log lines would share stderr with the error line."""
    from prodseg.train.cli import resolve_config_path

    off = {"logging.mlflow": False, "logging.tensorboard": False}
    cfg = load_config(resolve_config_path("fast_cpu"), off)
    path = folder / "quiet.yaml"
    path.write_text(cfg.to_yaml())
    return str(path)


OOM_ERRORS = {
    "cuda": lambda: torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    "cpu allocator": lambda: RuntimeError(
        "DefaultCPUAllocator: can't allocate memory: you tried to allocate 123456789 bytes. Error code 12"
    ),
    "MemoryError": MemoryError,
}


@pytest.mark.parametrize("kind", OOM_ERRORS)
def test_out_of_memory_stops_in_one_line_and_keeps_last_pt(tiny_dataset, tmp_path, monkeypatch, kind) -> None:
    import prodseg.train.fit as fit_module

    real, calls = fit_module.train_one_epoch, []

    def second_epoch_runs_out(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OOM_ERRORS[kind]()
        return real(*args, **kwargs)

    monkeypatch.setattr(fit_module, "train_one_epoch", second_epoch_runs_out)
    out = tmp_path / "out"
    args = [
        "--config",
        quiet_config(tmp_path),
        "--arch",
        "unet",
        "--image-size",
        "64",
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--device",
        "cpu",
        "--no-amp",
        "--workers",
        "0",
        "--no-progress",
        "--data",
        str(tiny_dataset),
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(train_main, args)
    assert result.exit_code == 2, (result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.stderr
    assert lines[0].startswith("error: training.hyperparameters.batch_size: out of memory training batch 4 ")
    for phrase in (
        "image size 64x64",
        "--batch-size auto",
        "--accumulate-grad-batches",
        "--image-size",
        "gradient_checkpointing",
    ):
        assert phrase in lines[0]
    (run,) = out.iterdir()
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == 1  # the finished epoch's


def test_out_of_memory_in_the_first_epoch_leaves_no_run_folder(tiny_dataset, tmp_path, monkeypatch) -> None:
    import prodseg.train.fit as fit_module

    def runs_out(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(fit_module, "train_one_epoch", runs_out)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        train_main,
        [
            "--config",
            quiet_config(tmp_path),
            "--arch",
            "unet",
            "--image-size",
            "64",
            "--epochs",
            "1",
            "--device",
            "cpu",
            "--no-progress",
            "--data",
            str(tiny_dataset),
            "--out",
            str(out),
            "--workers",
            "0",
        ],
    )
    assert result.exit_code == 2 and result.stderr.startswith("error: training.hyperparameters.batch_size")
    assert not out.exists() or not any(out.iterdir())


def test_other_errors_are_not_taken_for_out_of_memory() -> None:
    assert not autobatch.is_out_of_memory(RuntimeError("shape mismatch"))
    with pytest.raises(ValueError), autobatch.stop_on_out_of_memory(load_config(None)):
        raise ValueError("not memory")
