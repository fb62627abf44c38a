"""prodseg.train.tune: search-space validation, sampling, dict-field overrides, and a real pruned study."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
import yaml

from prodseg.config import apply_overrides, load_config
from prodseg.errors import BadInput, ConfigError
from prodseg.train.cli import resolve_config_path
from prodseg.train.tune import (
    TuneOptions,
    open_study,
    parse_search_space,
    sample,
    trial_config,
    tune,
)
from prodseg.train.tune_report import config_yaml, trials_table, write_plots, write_trials_csv

optuna = pytest.importorskip("optuna")

LR = "training.hyperparameters.learning_rate"
# Trial 0 of TPESampler(seed=37) draws lr 6.0e-3 (learns), trials 1 and 3 draw ~6e-6 and ~3e-6 (cannot learn
# in two epochs): with one startup trial and no warm-up the median pruner stops them at epoch 1.
PRUNING_SPACE = {
    LR: {"type": "float", "low": 1.0e-6, "high": 1.0e-2, "log": True},
    "training.loss.dice": {"type": "float", "low": 0.0, "high": 1.0},
}
PRUNING_SEED = 37


def tiny_config(data: Path | str, out: Path | str, search: dict[str, Any] | None = None) -> dict[str, Any]:
    """fast_cpu at 64x64 on CPU, 2 epochs, no trackers, loss {ce: 1.0}: the tests' base config as a dict."""
    cfg = load_config(resolve_config_path("fast_cpu"))
    cfg = apply_overrides(
        cfg,
        {
            "data.root": str(data),
            "data.image_size": [64, 64],
            # Batch 2 gives 4-5 optimizer steps per epoch on the 9 training images: enough for a good learning
            # rate to beat a hopeless one already at epoch 1 (batch 4 left both at untrained mIoU).
            "training.hyperparameters.batch_size": 2,
            "training.hyperparameters.num_epochs": 2,
            "training.hyperparameters.precise_bn_batches": 4,
            "training.scheduler.warmup_epochs": 0,
            "training.device": "cpu",
            "logging.out_dir": str(out),
            "logging.mlflow": False,
            "logging.tensorboard": False,
            "logging.sample_images": 0,
        },
    )
    raw = cfg.to_dict()
    raw["training"]["loss"] = {"ce": 1.0}
    raw["search"] = search if search is not None else PRUNING_SPACE
    return raw


def write_config(path: Path, raw: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture()
def base_cfg(tmp_path: Path):
    return load_config(write_config(tmp_path / "tune.yaml", tiny_config("data", tmp_path / "runs")))


def with_search(base_cfg, search: Any):
    raw = base_cfg.to_dict()
    raw["search"] = search
    from prodseg.config import config_from_dict

    return config_from_dict(raw)


@pytest.mark.parametrize(
    "key,spec,message",
    [
        (
            LR,
            {"type": "floaty", "low": 1, "high": 2},
            f"search.{LR}: unknown type 'floaty'; use one of float, int, categorical",
        ),
        (LR, {"type": "float", "high": 0.1}, f"search.{LR}: type float needs low and high (missing low)"),
        (
            "model.backbone",
            {"type": "categorical"},
            "search.model.backbone: type categorical needs choices (missing choices)",
        ),
        (
            "model.backbone",
            {"type": "categorical", "choices": []},
            "search.model.backbone: choices must be a non-empty list",
        ),
        (
            LR,
            {"type": "float", "low": 0.1, "high": 0.01},
            f"search.{LR}: low 0.1 > high 0.01; swap them so that low <= high",
        ),
        (
            LR,
            {"type": "float", "low": 0.0, "high": 0.01, "log": True},
            f"search.{LR}: log: true needs low > 0 (got 0.0); raise low or drop log",
        ),
        (LR, {"type": "float", "low": "a", "high": 0.01}, f"search.{LR}: low 'a' is not a finite number"),
        (LR, {"type": "float", "low": float("nan"), "high": 0.01}, f"search.{LR}: low nan is not a finite"),
        (LR, {"type": "float", "low": 1e-3, "high": float("inf")}, f"search.{LR}: high inf is not a finite"),
        (
            "training.hyperparameters.batch_size",
            {"type": "int", "low": 2.5, "high": 8},
            "search.training.hyperparameters.batch_size: low 2.5 is not an integer",
        ),
        (
            LR,
            {"type": "float", "lo": 0.1, "low": 0.1, "high": 1},
            f"search.{LR}: unknown field 'lo' for type float; allowed: type, low, high, log, step",
        ),
        (LR, 0.01, f"search.{LR}: expected a mapping like {{type: float, low: 0.1, high: 1.0}}, got 0.01"),
        (
            "training.hyperparameters.lr",
            {"type": "float", "low": 0.1, "high": 1},
            "unknown key 'training.hyperparameters.lr'; allowed keys there: accumulate_grad_batches, amp",
        ),
        (
            "training.augmentation.strength",
            {"type": "float", "low": 0.5, "high": 3.0},
            "training.augmentation.strength: 3.0 is out of range (0.0 .. 2.0)",
        ),
        (
            "model.architecture",
            {"type": "categorical", "choices": ["unet", "segformer"]},
            "model.architecture: 'segformer' is not allowed; choose one of deeplabv3plus, unet, yolov8_seg",
        ),
        (
            "training.loss.dicee",
            {"type": "float", "low": 0.0, "high": 1.0},
            "training.loss: {'ce': 1.0, 'dicee': 0.0} is not allowed; unknown loss 'dicee'; choose from ce",
        ),
        # The config refuses a negative clip norm (it would reverse every gradient): so does the search.
        (
            "training.hyperparameters.grad_clip_norm",
            {"type": "float", "low": -1.0, "high": 5.0},
            "search.training.hyperparameters.grad_clip_norm = -1.0: training.hyperparameters.grad_clip_norm: "
            "-1.0 is out of range (>= 0.0)",
        ),
        (
            "training.hyperparameters.grad_clip_norm",
            {"type": "categorical", "choices": [None, 1.0, -2.0]},
            "grad_clip_norm: -2.0 is out of range",
        ),
        # Rules on a lattice: every size must be a multiple of 32, which a range without a step breaks.
        (
            "data.image_size",
            {"type": "int", "low": 64, "high": 256},
            "search.data.image_size = 65: data.image_size: [65, 65] is not allowed; height and width must be "
            "multiples of 32",
        ),
        ("training.hyperparameters.seed", {"type": "int", "low": 0, "high": 2**40}, "is out of range (0 .."),
        (
            "training.optimizer.betas",
            {"type": "float", "low": 0.5, "high": 0.9},
            "training.optimizer.betas: expected a list, got 0.5",
        ),
    ],
)
def test_bad_search_space_names_the_key_and_the_remedy(base_cfg, key, spec, message):
    with pytest.raises(ConfigError) as exc:
        parse_search_space(with_search(base_cfg, {key: spec}), "tune.yaml")
    text = str(exc.value)
    assert text.startswith("tune.yaml: ") and message in text, text
    assert "\n" not in text


def test_ranges_the_config_accepts_throughout_pass(base_cfg):
    space = {
        "data.image_size": {"type": "int", "low": 64, "high": 256, "step": 32},
        "training.hyperparameters.grad_clip_norm": {"type": "categorical", "choices": [None, 0.0, 5.0]},
        LR: {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
    }
    assert parse_search_space(with_search(base_cfg, space)) == space


def test_empty_search_block_is_a_config_error(base_cfg):
    with pytest.raises(ConfigError, match="tune.yaml: the search block is empty; add e.g. search:"):
        parse_search_space(with_search(base_cfg, {}), "tune.yaml")


FULL_SPACE = {
    LR: {"type": "float", "low": 1.0e-4, "high": 1.0e-2, "log": True},
    "training.hyperparameters.weight_decay": {"type": "float", "low": 1.0e-6, "high": 1.0e-3, "log": True},
    "training.loss.dice": {"type": "float", "low": 0.0, "high": 1.0},
    "training.augmentation.strength": {"type": "float", "low": 0.5, "high": 1.5, "step": 0.25},
    "model.backbone": {"type": "categorical", "choices": ["mobilenet_v2", "resnet18"]},
    "training.hyperparameters.batch_size": {"type": "int", "low": 2, "high": 8, "step": 2},
}


def test_fixed_trial_values_become_the_trial_config(base_cfg):
    space = parse_search_space(with_search(base_cfg, FULL_SPACE))
    fixed = {
        LR: 0.003,
        "training.hyperparameters.weight_decay": 1e-5,
        "training.loss.dice": 0.25,
        "training.augmentation.strength": 1.25,
        "model.backbone": "resnet18",
        "training.hyperparameters.batch_size": 6,
    }
    params = sample(optuna.trial.FixedTrial(fixed), space)
    assert params == fixed
    cfg = trial_config(with_search(base_cfg, FULL_SPACE), params, "/tmp/x/trials")
    hp = cfg.training.hyperparameters
    assert (hp.learning_rate, hp.weight_decay, hp.batch_size) == (0.003, 1e-5, 6)
    assert cfg.training.loss == {"ce": 1.0, "dice": 0.25}  # a new term added to the dict-valued field
    assert (cfg.training.augmentation.strength, cfg.model.backbone) == (1.25, "resnet18")
    assert cfg.logging.out_dir == "/tmp/x/trials" and cfg.search == {}


def test_a_real_study_samples_within_bounds(base_cfg):
    space = parse_search_space(with_search(base_cfg, FULL_SPACE))
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=1))
    seen = []

    def objective(trial):
        seen.append(sample(trial, space))
        return float(seen[-1][LR])

    study.optimize(objective, n_trials=15)
    for p in seen:
        assert 1e-4 <= p[LR] <= 1e-2 and 1e-6 <= p["training.hyperparameters.weight_decay"] <= 1e-3
        assert 0.0 <= p["training.loss.dice"] <= 1.0
        assert p["training.augmentation.strength"] in (0.5, 0.75, 1.0, 1.25, 1.5)
        assert p["model.backbone"] in ("mobilenet_v2", "resnet18")
        assert p["training.hyperparameters.batch_size"] in (2, 4, 6, 8)
    assert len({p[LR] for p in seen}) == 15  # really sampled, not a constant


def test_dict_field_override_adds_a_loss_term_that_builds(base_cfg):
    from prodseg.train.losses import build_loss

    cfg = trial_config(base_cfg, {"training.loss.dice": 0.5, "training.loss.focal": 0.2})
    assert cfg.training.loss == {"ce": 1.0, "dice": 0.5, "focal": 0.2}
    assert set(build_loss(cfg.training, 10).terms) == {"ce", "dice", "focal"}
    with pytest.raises(ConfigError, match="unknown key 'training.hyperparameters.lr'"):
        trial_config(base_cfg, {"training.hyperparameters.lr": 0.1})


def test_a_null_choice_sets_an_optional_key_to_null(base_cfg):
    clip = "training.hyperparameters.grad_clip_norm"
    space = parse_search_space(with_search(base_cfg, {clip: {"type": "categorical", "choices": [None, 1.0]}}))
    assert base_cfg.training.hyperparameters.grad_clip_norm == 5.0
    assert (
        trial_config(
            base_cfg, sample(optuna.trial.FixedTrial({clip: None}), space)
        ).training.hyperparameters.grad_clip_norm
        is None
    )
    assert trial_config(base_cfg, {clip: 1.0}).training.hyperparameters.grad_clip_norm == 1.0
    with pytest.raises(ConfigError, match=r"learning_rate: expected float \(a finite number\), got None"):
        parse_search_space(with_search(base_cfg, {LR: {"type": "categorical", "choices": [None]}}), "c")
    with pytest.raises(ConfigError, match="unknown key 'model.nope'"):
        parse_search_space(with_search(base_cfg, {"model.nope": {"type": "categorical", "choices": [None]}}))


def test_best_config_yaml_has_no_search_block_and_round_trips(base_cfg, tmp_path):
    cfg = trial_config(base_cfg, {LR: 0.004, "training.loss.dice": 0.3})
    path = tmp_path / "best.yaml"
    path.write_text(config_yaml(cfg, "best trial 3\nrun folder: x"))
    assert path.read_text().startswith("# best trial 3\n# run folder: x\nmodel:")
    assert "search" not in yaml.safe_load(path.read_text())
    assert load_config(path) == cfg


def test_pruner_keeps_the_warmup_epochs_and_then_prunes_below_the_median(tmp_path):
    study = open_study(TuneOptions(out=tmp_path, trials=1, study_name="p", startup_trials=1, warmup_epochs=1))
    assert study.direction.name == "MAXIMIZE"
    dist = optuna.distributions.FloatDistribution(0.0, 1.0)
    study.add_trial(
        optuna.trial.create_trial(
            params={"x": 0.5}, distributions={"x": dist}, value=0.5, intermediate_values={1: 0.4, 2: 0.5}
        )
    )
    trial = study.ask()
    trial.report(0.1, 1)
    assert not trial.should_prune()  # epoch 1 is the warm-up
    trial.report(0.1, 2)
    assert trial.should_prune()  # 0.1 < median 0.5 at epoch 2
    again = open_study(TuneOptions(out=tmp_path, trials=1, study_name="p"))  # load_if_exists
    assert len(again.trials) == 2 and (tmp_path / "tune.db").is_file()


def test_unusable_storage_url_is_bad_input(tmp_path):
    with pytest.raises(BadInput, match=r"--storage nosuchdb://x: cannot open study 'p' \(.*check the URL"):
        open_study(TuneOptions(out=tmp_path, trials=1, study_name="p", storage="nosuchdb://x"))


def stored_study(values: list[float | None]):
    """An in-memory study with finished trials (None = pruned at epoch 1) over two params."""
    study = optuna.create_study(direction="maximize", study_name="s")
    dists = {
        LR: optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True),
        "model.backbone": optuna.distributions.CategoricalDistribution(["mobilenet_v2", "resnet18"]),
    }
    for i, value in enumerate(values):
        state = optuna.trial.TrialState.COMPLETE if value is not None else optuna.trial.TrialState.PRUNED
        study.add_trial(
            optuna.trial.create_trial(
                params={LR: 1e-3 * (i + 1), "model.backbone": "resnet18"},
                distributions=dists,
                state=state,
                value=value,
                intermediate_values={1: 0.01 * (i + 1), **({2: value} if value is not None else {})},
                user_attrs={"run_dir": f"runs/t{i}", **({} if value is not None else {"pruned_at_epoch": 1})},
            )
        )
    return study


def test_reports_cover_every_trial_and_degenerate_plots_are_skipped(tmp_path):
    from rich.console import Console

    study = stored_study([0.2, None, 0.2])  # equal values, a constant backbone: degenerate importances
    path = write_trials_csv(study, tmp_path / "trials.csv")
    rows = list(csv.DictReader(path.open()))
    assert [(r["number"], r["state"], r["run_dir"], r["pruned_at_epoch"]) for r in rows] == [
        ("0", "COMPLETE", "runs/t0", ""),
        ("1", "PRUNED", "runs/t1", "1"),
        ("2", "COMPLETE", "runs/t2", ""),
    ]
    assert float(rows[1][LR]) == 0.002 and rows[0]["model.backbone"] == "resnet18"
    console = Console(width=120, record=True)
    console.print(trials_table(study))
    text = console.export_text()
    assert "learning_rate" in text and "backbone" in text and text.count("COMPLETE") == 2
    written = {p.name for p in write_plots(study, tmp_path)}
    assert {"optimization_history.png", "intermediate_values.png"} <= written  # importance may be skipped
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind
    only_pruned = write_plots(stored_study([None]), tmp_path / "none")  # no completed trial
    assert [p.name for p in only_pruned] == ["intermediate_values.png"]


@pytest.mark.slow
def test_study_prunes_completes_and_the_best_config_trains(tiny_dataset, tmp_path):
    from prodseg.train.fit import fit

    base = load_config(write_config(tmp_path / "tune.yaml", tiny_config(tiny_dataset, tmp_path / "runs")))
    out = tmp_path / "tune"
    opts = TuneOptions(
        out=out, trials=4, study_name="t", startup_trials=1, warmup_epochs=0, seed=PRUNING_SEED
    )
    result = tune(base, opts, "tune.yaml")

    study = optuna.load_study(study_name="t", storage=f"sqlite:///{out / 'tune.db'}")
    states = [t.state.name for t in study.trials]
    assert len(states) == 4 and states.count("PRUNED") >= 1 and states.count("COMPLETE") >= 1, states
    low_lr = [t for t in study.trials if t.params[LR] < 1e-5]
    assert low_lr and all(t.state.name == "PRUNED" for t in low_lr)
    for t in study.trials:
        assert Path(t.user_attrs["run_dir"]).parent == out / "trials"
        if t.state.name == "PRUNED":
            assert t.user_attrs["pruned_at_epoch"] == max(t.intermediate_values)
        else:
            assert t.value == max(t.intermediate_values.values()) and t.user_attrs["best_epoch"] in (1, 2)

    with (out / "trials.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["state"] for r in rows] == states
    assert list(rows[0])[:5] == ["number", "state", "value", LR, "training.loss.dice"]
    assert {"duration_s", "run_dir", "pruned_at_epoch"} <= set(rows[0])
    assert all(float(r["duration_s"]) > 0 for r in rows)
    assert {p.name for p in result.files} >= {"optimization_history.png", "intermediate_values.png"}
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in result.files if p.suffix == ".png")

    best = load_config(result.best_config)
    assert best.search == {} and best.logging.out_dir == str(tmp_path / "runs")
    assert best.training.hyperparameters.learning_rate == study.best_trial.params[LR]
    assert best.training.loss == {"ce": 1.0, "dice": study.best_trial.params["training.loss.dice"]}
    trained = fit(apply_overrides(best, {"training.hyperparameters.num_epochs": 1}), progress=False)
    assert trained.best_epoch == 1 and (trained.run_dir / "best.pt").is_file()
    assert trained.run_dir.parent == tmp_path / "runs"


RACE = """
import sys, time
from pathlib import Path
from prodseg.train.tune import TuneOptions, open_study
while time.time() < float(sys.argv[2]):
    time.sleep(0.001)
study = open_study(TuneOptions(out=Path(sys.argv[1]), trials=1, study_name="race"))
print(study.study_name)
"""


@pytest.mark.slow
def test_workers_starting_together_on_a_new_storage_all_open_the_study(tmp_path):
    """Without the retry, 6 of 9 such processes failed here ("table studies already exists" and others)."""
    import os
    import subprocess
    import sys
    import time

    start = str(time.time() + 8)  # after every interpreter has imported optuna
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, str(tmp_path), start],
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(3)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-500:] for _, err in results]
    assert [out.strip() for out, _ in results] == ["race"] * 3
    assert len(optuna.get_all_study_summaries(f"sqlite:///{tmp_path / 'tune.db'}")) == 1
