"""Optuna search over the config's `search:` block: sample -> `fit` -> report val mIoU per epoch -> prune.

    search:
      training.hyperparameters.learning_rate: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
      training.hyperparameters.batch_size: {type: int, low: 2, high: 8, step: 2}
      model.backbone: {type: categorical, choices: [mobilenet_v2, resnet18]}

Keys are dotted config keys. The space is validated before any trial runs (types, bounds, and each key
applied to the base config at its extreme values). Trials share an RDB storage, so several processes
or machines can work on one study. The outputs (best config, trials table, plots): `tune_report`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prodseg.atomic import check_output_path, ensure_writable_dir
from prodseg.config import Config, apply_overrides, show
from prodseg.errors import BadInput, ConfigError, GateFailed, MissingExtra, ProdsegError, require
from prodseg.train.outputs import first_missing, remove_empty_dirs

log = logging.getLogger("prodseg.tune")

# Plain YAML scalars a categorical choice may hold (they must survive the RDB storage and best_config.yaml).
SCALARS = (str, int, float, bool, type(None))


class TrialFailed(Exception):
    """A trial's training stopped with a ProdsegError (e.g. it diverged): FAILED, the study goes on."""


@dataclass(frozen=True)
class SpecType:
    """One `type:` of the search block: its allowed spec keys, a validator and the `trial.suggest_*` call."""

    required: tuple[str, ...]
    optional: tuple[str, ...]
    check: Callable[[str, dict[str, Any]], None]
    suggest: Callable[[Any, str, dict[str, Any]], Any]
    extremes: Callable[[dict[str, Any]], list[Any]]


def _is_number(value: Any, kind: type | tuple[type, ...] = (int, float)) -> bool:
    return isinstance(value, kind) and not isinstance(value, bool)


def _check_range(key: str, spec: dict[str, Any], kind: type | tuple[type, ...]) -> None:
    """Shared float/int checks: finite numeric low <= high, positive low for log, log and step exclusive."""
    name = "an integer" if kind is int else "a finite number"
    for bound in ("low", "high", "step"):
        if bound in spec and spec[bound] is not None and not _is_finite(spec[bound], kind):
            raise ConfigError(
                f"search.{key}: {bound} {show(spec[bound])} is not {name}; write e.g. {bound}: 1"
            )
    low, high = spec["low"], spec["high"]
    if low > high:
        raise ConfigError(f"search.{key}: low {low} > high {high}; swap them so that low <= high")
    if spec.get("log") and low <= 0:
        raise ConfigError(f"search.{key}: log: true needs low > 0 (got {low}); raise low or drop log")
    if spec.get("log") and spec.get("step") is not None:
        raise ConfigError(f"search.{key}: log and step cannot be combined; drop one of them")
    if spec.get("step") is not None and spec["step"] <= 0:
        raise ConfigError(f"search.{key}: step {spec['step']} must be > 0")
    if not isinstance(spec.get("log", False), bool):
        raise ConfigError(f"search.{key}: log must be true or false, got {show(spec['log'])}")


def _is_finite(value: Any, kind: type | tuple[type, ...]) -> bool:
    return _is_number(value, kind) and (isinstance(value, int) or math.isfinite(value))


def _range_probes(spec: dict[str, Any], integer: bool) -> list[Any]:
    """Values of a range the base config must accept: both ends, and the first step above low.

    The config's bounds are intervals, so the ends cover them; the first step catches rules on a lattice
    (an image size must be a multiple of 32: low 64, step 32 passes, low 64 without a step admits 65).
    """
    low, high = spec["low"], spec["high"]
    step = spec.get("step") or (1 if integer else None)
    probes = [low, high] if integer else [float(low), float(high)]
    if step is not None and low + step < high:
        probes.append(low + step)
    return probes


def _check_choices(key: str, spec: dict[str, Any]) -> None:
    choices = spec["choices"]
    if not isinstance(choices, list) or not choices:
        raise ConfigError(f"search.{key}: choices must be a non-empty list, e.g. choices: [a, b]")
    bad = [c for c in choices if not isinstance(c, SCALARS)]
    if bad:
        raise ConfigError(f"search.{key}: choice {show(bad[0])} is not a string, number, bool or null")


SPEC_TYPES: dict[str, SpecType] = {
    "float": SpecType(
        ("low", "high"),
        ("log", "step"),
        lambda key, spec: _check_range(key, spec, (int, float)),
        lambda trial, key, s: trial.suggest_float(
            key, s["low"], s["high"], log=s.get("log", False), step=s.get("step")
        ),
        lambda s: _range_probes(s, integer=False),
    ),
    "int": SpecType(
        ("low", "high"),
        ("log", "step"),
        lambda key, spec: _check_range(key, spec, int),
        lambda trial, key, s: trial.suggest_int(
            key, s["low"], s["high"], step=s.get("step") or 1, log=s.get("log", False)
        ),
        lambda s: _range_probes(s, integer=True),
    ),
    "categorical": SpecType(
        ("choices",),
        (),
        _check_choices,
        lambda trial, key, s: trial.suggest_categorical(key, s["choices"]),
        lambda s: list(s["choices"]),
    ),
}


def _check_spec(key: str, spec: Any) -> SpecType:
    """The SpecType of one entry, after checking its shape; ConfigError names the key and the fix."""
    types = ", ".join(SPEC_TYPES)
    if not isinstance(spec, dict):
        raise ConfigError(
            f"search.{key}: expected a mapping like {{type: float, low: 0.1, high: 1.0}}, got {show(spec)}"
        )
    kind = SPEC_TYPES.get(spec["type"]) if isinstance(spec.get("type"), str) else None
    if kind is None:
        raise ConfigError(f"search.{key}: unknown type {show(spec.get('type'))}; use one of {types}")
    missing = [k for k in kind.required if k not in spec]
    if missing:
        raise ConfigError(
            f"search.{key}: type {spec['type']} needs {' and '.join(kind.required)} "
            f"(missing {', '.join(missing)})"
        )
    unknown = sorted((k for k in spec if k not in {"type", *kind.required, *kind.optional}), key=str)
    if unknown:
        allowed = ", ".join(("type", *kind.required, *kind.optional))
        raise ConfigError(
            f"search.{key}: unknown field '{unknown[0]}' for type {spec['type']}; allowed: {allowed}"
        )
    kind.check(key, spec)
    return kind


def parse_search_space(cfg: Config, source: str = "config") -> dict[str, dict[str, Any]]:
    """Validate `cfg.search` and return it; every error names the key and what to change."""
    if not cfg.search:
        raise ConfigError(
            f"{source}: the search block is empty; add e.g. search: {{training.hyperparameters."
            "learning_rate: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}}"
        )
    space = {}
    for key, spec in cfg.search.items():
        try:
            kind = _check_spec(str(key), spec)
            for value in kind.extremes(spec):
                check_override(cfg, str(key), value)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from exc
        space[str(key)] = dict(spec)
    return space


def apply_params(cfg: Config, params: dict[str, Any], source: str) -> Config:
    """`apply_overrides`, except that a None value sets the key to null (CLI overrides skip None instead)."""
    return apply_overrides(cfg, params, source, skip_none=False)


def check_override(cfg: Config, key: str, value: Any) -> Config:
    """Apply `key: value` to `cfg` as a trial would: the config layer refuses what training would refuse."""
    return apply_params(cfg, {key: value}, f"search.{key} = {show(value)}")


def sample(trial: Any, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One value per search key from the trial (a live optuna Trial or a FixedTrial)."""
    return {key: SPEC_TYPES[spec["type"]].suggest(trial, key, spec) for key, spec in space.items()}


def trial_config(base: Config, params: dict[str, Any], out_dir: Path | str | None = None) -> Config:
    """The base config with the trial's params applied and no search block; optionally a new out_dir."""
    overrides = dict(params)
    if out_dir is not None:
        overrides["logging.out_dir"] = str(out_dir)
    cfg = apply_params(base, overrides, "trial parameters")
    return dataclasses.replace(cfg, search={})


@dataclass
class TuneOptions:
    """What `prodseg-tune` asks for besides the config."""

    out: Path
    trials: int
    storage: str | None = None
    study_name: str = "prodseg"
    timeout: float | None = None
    startup_trials: int = 2
    warmup_epochs: int = 1
    seed: int | None = None

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{Path(self.out).resolve() / 'tune.db'}"


@dataclass
class TuneResult:
    """The study, this process's trial numbers and the files written."""

    study: Any
    ran: list[int]
    best_config: Path | None
    files: list[Path]

    def completed_here(self) -> int:
        return sum(1 for t in self.study.trials if t.number in self.ran and t.state.name == "COMPLETE")


# Workers started together on a new storage race to create its tables and the study; the losers get
# one of these database errors and only need to open it again (measured: 2 processes on a fresh sqlite
# file failed one with "table studies already exists").
RACE_MESSAGES = ("already exists", "database is locked", "unique constraint", "duplicate")
OPEN_ATTEMPTS = 6


def open_study(opts: TuneOptions) -> Any:
    """Create or load the study (maximize val mIoU) in the RDB storage: TPE sampler, median pruner."""
    for attempt in range(1, OPEN_ATTEMPTS + 1):
        try:
            return _create_or_load(opts)
        except Exception as exc:  # SQLAlchemy URL, driver and connection errors, a study of another direction
            racing = any(m in str(exc).lower() for m in RACE_MESSAGES)
            if racing and attempt < OPEN_ATTEMPTS:
                log.info("storage busy (%s); opening the study again", type(exc).__name__)
                time.sleep(0.2 * attempt)
                continue
            raise BadInput(
                f"--storage {opts.storage_url}: cannot open study '{opts.study_name}' "
                f"({type(exc).__name__}: {exc}); check the URL, that its database driver is installed "
                "and that the server is reachable"
            ) from exc
    raise AssertionError("unreachable")


def _create_or_load(opts: TuneOptions) -> Any:
    optuna = require("optuna", "tune", "prodseg-tune")
    return optuna.create_study(
        storage=opts.storage_url,
        study_name=opts.study_name,
        sampler=optuna.samplers.TPESampler(seed=opts.seed),
        # Steps are epochs counted from 1 and Optuna may prune at step == n_warmup_steps: +1 keeps the
        # first `warmup_epochs` epochs of every trial safe.
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=opts.startup_trials, n_warmup_steps=opts.warmup_epochs + 1
        ),
        direction="maximize",
        load_if_exists=True,
    )


def make_objective(base: Config, space: dict[str, dict[str, Any]], out: Path) -> Callable[[Any], float]:
    """The Optuna objective: train one sampled config, report val mIoU each epoch, return the best."""
    optuna = require("optuna", "tune", "prodseg-tune")
    from prodseg.train.fit import fit

    def objective(trial: Any) -> float:
        cfg = trial_config(base, sample(trial, space), out / "trials")

        def report(run: Any, row: dict[str, float]) -> None:
            if "run_dir" not in trial.user_attrs:
                trial.set_user_attr("run_dir", str(run.run_dir))
            if "val/miou" not in row:
                return
            epoch = run.state.epoch
            trial.report(row["val/miou"], epoch)
            if trial.should_prune():
                trial.set_user_attr("pruned_at_epoch", epoch)
                raise optuna.TrialPruned(f"val mIoU {row['val/miou']:.4f} at epoch {epoch} is below median")

        try:
            result = fit(cfg, progress=False, on_epoch_end=report)
        except (BadInput, MissingExtra):
            raise  # a wrong config or a missing extra fails every trial alike: stop the study (exit 2)
        except ProdsegError as exc:
            trial.set_user_attr("error", str(exc))
            raise TrialFailed(str(exc)) from exc
        trial.set_user_attr("run_dir", str(result.run_dir))
        trial.set_user_attr("best_epoch", result.best_epoch)
        return result.best_miou

    return objective


class _OneLineFailures(logging.Filter):
    """Optuna logs a failed trial with its traceback; a diverged training needs only its message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], TrialFailed):
            record.exc_info = None
        return True


def tune(base: Config, opts: TuneOptions, source: str = "config") -> TuneResult:
    """Validate, run `opts.trials` trials of the (shared) study, then write the reports under `opts.out`."""
    from prodseg.train.fit import preflight

    space = parse_search_space(base, source)
    optuna = require("optuna", "tune", "prodseg-tune")
    check_output_path(opts.out, "--out", folder=True)
    preflight(trial_config(base, {}, Path(opts.out) / "trials"))  # the data, as every trial reads it
    created = first_missing(opts.out)
    ensure_writable_dir(opts.out)
    # A filter on the handler (not the logger) also sees the records of optuna's child loggers.
    for handler in optuna.logging.get_logger("optuna").handlers:
        if not any(isinstance(f, _OneLineFailures) for f in handler.filters):
            handler.addFilter(_OneLineFailures())
    try:
        study = open_study(opts)
    except BadInput:
        remove_empty_dirs(Path(opts.out), created)  # no study, no output folder
        raise
    ran: list[int] = []
    start = time.perf_counter()
    study.optimize(
        make_objective(base, space, Path(opts.out)),
        n_trials=opts.trials,
        timeout=opts.timeout,
        catch=(TrialFailed,),
        callbacks=[lambda _study, trial: ran.append(trial.number)],
    )
    log.info("%d trial(s) in %.1f s", len(ran), time.perf_counter() - start)
    from prodseg.train.tune_report import report_study  # it imports trial_config from here

    best, files = report_study(study, base, Path(opts.out))
    return TuneResult(study, ran, best, files)


def finish(result: TuneResult) -> None:
    """GateFailed (exit 1) when none of this process's trials completed."""
    if result.completed_here() == 0:
        states = [t.state.name for t in result.study.trials if t.number in result.ran]
        counts = ", ".join(f"{states.count(s)} {s.lower()}" for s in sorted(set(states))) or "none ran"
        errors = [
            t.user_attrs["error"]
            for t in result.study.trials
            if t.number in result.ran and "error" in t.user_attrs
        ]
        why = f"; first error: {errors[0]}" if errors else ""
        raise GateFailed(f"no trial completed ({counts}){why}; adjust the search space (see trials.csv)")
