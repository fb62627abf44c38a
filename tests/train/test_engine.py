"""The loop: precision policy, accumulation maths, clipping, NaN stop, exact resume, early stopping."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prodseg.config import HyperParameters, load_config
from prodseg.errors import BadInput, ConfigError
from prodseg.train.checkpoint import load_checkpoint
from prodseg.train.engine import (
    LoopState,
    Precision,
    TrainingDiverged,
    recompute_bn_stats,
    resolve_device,
    resolve_precision,
    train_one_epoch,
)
from prodseg.train.models.base import SegModel


class TinySeg(SegModel):
    """A 1x1-conv segmenter without BatchNorm, so micro-batches and full batches are comparable."""

    arch, num_classes, output_kind = "tiny", 3, "semantic_logits"

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, images):
        return self.conv(images)

    def compute_loss(self, outputs, batch, criterion):
        loss = nn.functional.cross_entropy(outputs, batch["mask"])
        return loss, {"ce": float(loss.detach())}


def batches(n_images: int, per_batch: int, nan: bool = False) -> list[dict]:
    g = torch.Generator().manual_seed(1)
    images = torch.randn(n_images, 3, 4, 4, generator=g)
    if nan:
        images[-1, 0, 0, 0] = float("nan")
    masks = torch.randint(0, 3, (n_images, 4, 4), generator=g)
    return [
        {"image": images[i : i + per_batch], "mask": masks[i : i + per_batch]}
        for i in range(0, n_images, per_batch)
    ]


def run_epoch(model, loader, accum=1, clip=None, lr=0.5):
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    hp = HyperParameters(accumulate_grad_batches=accum, grad_clip_norm=clip, amp=False)
    state = LoopState()
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    row = train_one_epoch(
        model, None, opt, sched, scaler, loader, Precision(torch.device("cpu"), False), hp, state
    )
    return state, row


def test_cpu_precision_policy():
    cpu = torch.device("cpu")
    assert not resolve_precision(cpu, HyperParameters(amp=False)).enabled
    assert resolve_precision(cpu, HyperParameters(amp=True, amp_dtype="bf16")).dtype == torch.bfloat16
    auto = resolve_precision(cpu, HyperParameters(amp=True, amp_dtype="auto"))
    assert auto.enabled == bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    assert not auto.use_scaler
    with pytest.raises(ConfigError, match="fp16 autocast needs a CUDA GPU"):
        resolve_precision(cpu, HyperParameters(amp=True, amp_dtype="fp16"))


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        assert resolve_device("auto").type == "cpu"
        with pytest.raises(BadInput, match="no CUDA GPU"):
            resolve_device("cuda")
    with pytest.raises(ConfigError, match="choose auto, cpu"):
        resolve_device("tpu")


def test_accumulating_two_half_batches_equals_one_full_batch():
    full, accumulated = TinySeg(), TinySeg()
    run_epoch(full, batches(4, 4))
    state, _ = run_epoch(accumulated, batches(4, 2), accum=2)
    assert state.global_step == 1
    for a, b in zip(full.parameters(), accumulated.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_a_short_last_group_still_steps_and_averages():
    # 3 micro-batches with accumulation 2: steps after batches 2 and 3 (the last one alone, not halved).
    model, reference = TinySeg(), TinySeg()
    data = batches(6, 2)
    state, row = run_epoch(model, data, accum=2)
    assert state.global_step == 2
    first_four = {k: torch.cat([data[0][k], data[1][k]]) for k in ("image", "mask")}
    run_epoch(reference, [first_four])
    run_epoch(reference, data[2:])
    for a, b in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert set(row) >= {"train/loss", "train/ce", "train/lr", "train/images_per_s"}


def test_clipping_bounds_the_update():
    model = TinySeg()
    before = [p.detach().clone() for p in model.parameters()]
    run_epoch(model, batches(4, 4), clip=1e-3, lr=1.0)
    step = torch.cat([(p.detach() - b).flatten() for p, b in zip(model.parameters(), before, strict=True)])
    assert step.norm() == pytest.approx(1e-3, rel=1e-3)  # plain SGD: the step is lr * the clipped gradient


def test_nan_loss_stops_with_epoch_and_step():
    with pytest.raises(TrainingDiverged, match=r"loss became nan at epoch 1, batch 2 \(optimizer step 1\)"):
        run_epoch(TinySeg(), batches(4, 2, nan=True))
    assert TrainingDiverged("x").exit_code == 2


def test_precise_bn_replaces_running_stats_by_the_batch_average():
    bn = nn.BatchNorm2d(3)
    bn.running_mean.fill_(5.0)
    data = batches(8, 4)
    recompute_bn_stats(bn, data, Precision(torch.device("cpu"), False), batches=2)
    expected = torch.cat([d["image"] for d in data]).mean(dim=(0, 2, 3))  # equal-size batches: plain mean
    torch.testing.assert_close(bn.running_mean, expected)
    assert bn.momentum == 0.1 and bn.training  # settings and mode restored


# --- fit on a tiny real dataset (DeepLabV3+ MobileNetV2 at 64x64) ------------------------------------


def fit_cfg(root, out, **over):
    base = {
        "model.backbone": "mobilenet_v2",
        "model.aspp_dilate": [2, 4, 6],
        "data.root": str(root),
        "data.image_size": [64, 64],
        "data.num_workers": 0,
        "logging.out_dir": str(out),
        "logging.tensorboard": False,
        "logging.mlflow": False,
        "logging.sample_images": 1,
        "training.hyperparameters.batch_size": 4,
        "training.hyperparameters.num_epochs": 4,
        "training.hyperparameters.amp": False,
        "training.hyperparameters.learning_rate": 0.01,
        "training.scheduler.warmup_epochs": 0.5,
        "training.device": "cpu",
        "training.hyperparameters.precise_bn_batches": 1,  # resume must replay it exactly too
    }
    return load_config(None, {**base, **over})


class Crash(Exception):
    pass


@pytest.mark.slow
def test_resume_after_a_crash_ends_exactly_like_an_uninterrupted_run(tiny_dataset, tmp_path):
    from prodseg.train.fit import fit

    straight = fit(fit_cfg(tiny_dataset, tmp_path / "a"), progress=False)

    def crash_after_two(run, row):
        if run.state.epoch == 2:
            raise Crash

    with pytest.raises(Crash):
        fit(fit_cfg(tiny_dataset, tmp_path / "b"), progress=False, on_epoch_end=crash_after_two)
    crashed_dir = next((tmp_path / "b").iterdir())
    assert load_checkpoint(crashed_dir / "last.pt")["epoch"] == 2
    resumed = fit(fit_cfg(tiny_dataset, tmp_path / "b"), resume=crashed_dir / "last.pt", progress=False)

    assert resumed.run_dir == crashed_dir
    a, b = load_checkpoint(straight.run_dir / "last.pt"), load_checkpoint(resumed.run_dir / "last.pt")
    assert a["epoch"] == b["epoch"] == 4 and a["global_step"] == b["global_step"]
    for key, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][key]), key
    for key, value in a["optimizer"]["state"][0].items():
        assert torch.equal(value, b["optimizer"]["state"][0][key]), key
    strip = [
        {k: v for k, v in row.items() if "seconds" not in k and "per_s" not in k} for row in a["history"]
    ]
    assert strip == [
        {k: v for k, v in row.items() if "seconds" not in k and "per_s" not in k} for row in b["history"]
    ]
    assert straight.best_miou == resumed.best_miou
    csv_rows = (resumed.run_dir / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in csv_rows] == ["epoch", "0", "1", "2", "3", "4"]


@pytest.mark.slow
def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tiny_dataset, tmp_path):
    from prodseg.train.fit import fit

    saved = {}

    def explode_lr(run, row):  # inject divergence after a good epoch
        saved["bytes"] = (run.run_dir / "last.pt").read_bytes()
        run.scheduler.base_lrs = [1e30 for _ in run.scheduler.base_lrs]

    cfg = fit_cfg(tiny_dataset, tmp_path, **{"training.hyperparameters.num_epochs": 2})
    with pytest.raises(TrainingDiverged, match="at epoch 2"):
        fit(cfg, progress=False, on_epoch_end=explode_lr)
    run_dir = next(tmp_path.iterdir())
    assert (run_dir / "last.pt").read_bytes() == saved["bytes"]
    assert load_checkpoint(run_dir / "last.pt")["epoch"] == 1


@pytest.mark.slow
def test_resume_rejects_a_finished_run_and_another_architecture(tiny_dataset, tmp_path):
    from prodseg.train.fit import fit

    cfg = fit_cfg(
        tiny_dataset,
        tmp_path,
        **{"training.hyperparameters.num_epochs": 1, "training.hyperparameters.early_stopping_patience": 1},
    )
    done = fit(cfg, progress=False)
    assert (done.run_dir / "best.pt").is_file() and done.best_epoch == 1
    with pytest.raises(BadInput, match="already trained 1 epochs; pass --epochs N with N > 1"):
        fit(cfg, resume=done.run_dir / "last.pt", progress=False)
    with pytest.raises(BadInput, match="holds a deeplabv3plus model but the config asks for unet"):
        fit(
            fit_cfg(tiny_dataset, tmp_path, **{"model.architecture": "unet"}), resume=done.run_dir / "last.pt"
        )


# --- CUDA policy on CPU: torch.cuda capabilities are stand-ins (monkeypatched); there is no GPU here ---

CUDA = torch.device("cuda")


@pytest.mark.parametrize(
    "amp, amp_dtype, native_bf16, expected, scaler",
    [
        (False, "auto", True, None, False),
        (True, "auto", True, torch.bfloat16, False),  # Ampere and newer: bf16, no GradScaler
        (True, "auto", False, torch.float16, True),  # older GPUs: fp16 with GradScaler
        (True, "fp16", True, torch.float16, True),
        (True, "bf16", True, torch.bfloat16, False),
        (True, "bf16", False, torch.bfloat16, False),  # emulated bf16 when asked for explicitly
    ],
)
def test_cuda_precision_decision_table(monkeypatch, amp, amp_dtype, native_bf16, expected, scaler):
    def is_bf16_supported(including_emulation: bool = True) -> bool:
        return native_bf16 or including_emulation

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    precision = resolve_precision(CUDA, HyperParameters(amp=amp, amp_dtype=amp_dtype))
    assert precision.enabled == (expected is not None)
    assert precision.use_scaler == scaler
    if expected is not None:
        assert precision.dtype == expected


def test_bf16_on_a_gpu_without_it_is_a_config_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    with pytest.raises(ConfigError, match="amp_dtype: bf16 is not supported by this GPU; use fp16"):
        resolve_precision(CUDA, HyperParameters(amp=True, amp_dtype="bf16"))


@pytest.mark.parametrize(
    "device, fixed, deterministic, expected",
    [
        ("cuda", True, False, True),
        ("cuda", False, False, False),
        ("cuda", True, True, False),
        ("cpu", True, False, None),
    ],
)
def test_cudnn_autotuning_only_for_fixed_shapes_without_determinism(
    monkeypatch, device, fixed, deterministic, expected
):
    from prodseg.train.engine import configure_cudnn

    before = True if expected is None else not expected
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", before)
    monkeypatch.setattr(torch, "are_deterministic_algorithms_enabled", lambda: deterministic)
    configure_cudnn(torch.device(device), fixed_shapes=fixed)
    assert torch.backends.cudnn.benchmark is (before if expected is None else expected)  # CPU: untouched


class TensorLossSeg(TinySeg):
    """TinySeg returning its loss parts as detached tensors (as the real models do), through a criterion."""

    def compute_loss(self, outputs, batch, criterion):
        loss = criterion(outputs, batch["mask"])
        return loss, dict(criterion.last_terms)


def count_host_reads(monkeypatch) -> list[str]:
    """Record every explicit device->host read of a tensor (each is a sync on a GPU)."""
    calls: list[str] = []
    for name in ("item", "tolist", "__float__"):
        real = getattr(torch.Tensor, name)

        def counted(self, *args, _real=real, _name=name, **kwargs):
            calls.append(_name)
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return calls


def test_the_loop_reads_the_loss_once_per_log_point_not_per_step(monkeypatch):
    from prodseg.config import TrainingConfig
    from prodseg.train.losses import build_loss

    criterion = build_loss(TrainingConfig(loss={"ce": 1.0, "dice": 0.5}, class_weights=[1.0, 2.0, 3.0]), 3)
    hp = HyperParameters(amp=False)
    model = TensorLossSeg()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    loader = batches(24, 2)  # 12 steps; log points: batch 1, 4, 8, 12
    calls = count_host_reads(monkeypatch)
    shown = []
    row = train_one_epoch(
        model,
        criterion,
        opt,
        sched,
        torch.amp.GradScaler("cpu", enabled=False),
        loader,
        Precision(torch.device("cpu"), False),
        hp,
        LoopState(),
        progress=lambda done, total, loss, lr, ips: shown.append(loss),
        log_every=4,
    )
    monkeypatch.undo()
    assert len(calls) == 4, calls
    assert len(shown) == 12 and shown[0] == shown[1] == shown[2]  # the bar keeps the last read value
    assert set(row) >= {"train/loss", "train/ce", "train/dice"}


def test_device_sums_equal_host_float_sums():
    """The epoch means come out exactly as a host-side float accumulation of each step's loss gives them."""
    from prodseg.train.engine import EpochSums

    g = torch.Generator().manual_seed(0)
    values = [torch.rand((), generator=g) * 10 for _ in range(100)]
    sums = EpochSums(torch.device("cpu"))
    for i, v in enumerate(values):
        sums.add(i, v, {"ce": v / 3})
    totals, bad, _ = sums.read()
    assert bad == -1
    assert totals["loss"] == sum(float(v) for v in values)
    assert totals["ce"] == sum(float(v / 3) for v in values)


def test_a_late_nan_is_reported_at_its_own_batch_after_the_next_log_point():
    with pytest.raises(TrainingDiverged, match=r"loss became nan at epoch 1, batch 3 \(optimizer step 2\)"):
        model = TinySeg()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        data = batches(8, 2)
        data[2]["image"][0, 0, 0, 0] = float("nan")
        train_one_epoch(
            model,
            None,
            opt,
            torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0),
            torch.amp.GradScaler("cpu", enabled=False),
            data,
            Precision(torch.device("cpu"), False),
            HyperParameters(amp=False),
            LoopState(),
            log_every=4,
        )
