"""`prodseg-tune`'s outputs: best_config.yaml, trials.csv, a rich trials table, Optuna's plots as PNGs.

Everything is written atomically under the tune folder and covers the whole study (all processes' trials).
"""

from __future__ import annotations

import csv
import logging
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from prodseg.atomic import atomic_path, write_text
from prodseg.config import Config
from prodseg.errors import require
from prodseg.train.tune import trial_config

log = logging.getLogger("prodseg.tune")


def config_yaml(cfg: Config, header: str = "") -> str:
    """YAML that `prodseg-train --config` loads: the full config without the search block."""
    raw = cfg.to_dict()
    raw.pop("search", None)
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    return comment + yaml.safe_dump(raw, sort_keys=False)


def report_study(study: Any, base: Config, out: Path) -> tuple[Path | None, list[Path]]:
    """Write trials.csv, best_config.yaml (if a trial completed) and the plots; returns (best, files)."""
    files = [write_trials_csv(study, out / "trials.csv")]
    best = None
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    if complete:
        trial = study.best_trial
        header = (
            f"best trial {trial.number} of study '{study.study_name}': val mIoU {trial.value:.4f} "
            f"(prodseg-tune)\nrun folder: {trial.user_attrs.get('run_dir', '?')}"
        )
        best = write_text(out / "best_config.yaml", config_yaml(trial_config(base, trial.params), header))
        files.append(best)
    files += write_plots(study, out)
    return best, files


def trial_rows(study: Any) -> tuple[list[str], list[dict[str, Any]]]:
    """Columns and one row per trial of the study (all processes'), params in search-block order."""
    params: list[str] = []
    for t in study.trials:
        params += [p for p in t.params if p not in params]
    columns = [
        "number",
        "state",
        "value",
        *params,
        "duration_s",
        "run_dir",
        "pruned_at_epoch",
        "best_epoch",
        "error",
    ]
    rows = []
    for t in study.trials:
        duration = t.duration.total_seconds() if t.duration is not None else None
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                "value": t.value,
                **{p: t.params.get(p) for p in params},
                "duration_s": None if duration is None else round(duration, 2),
                "run_dir": t.user_attrs.get("run_dir"),
                "pruned_at_epoch": t.user_attrs.get("pruned_at_epoch"),
                "best_epoch": t.user_attrs.get("best_epoch"),
                "error": t.user_attrs.get("error"),
            }
        )
    return columns, rows


def write_trials_csv(study: Any, path: Path) -> Path:
    """trials.csv: number, state, value, params..., duration_s, run_dir, pruned_at_epoch (atomic)."""
    columns, rows = trial_rows(study)
    with atomic_path(path) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    return path


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if not math.isnan(value) else "nan"
    return str(value)


def trials_table(study: Any) -> Any:
    """A rich Table of the study's trials (params by their last key component where unambiguous)."""
    from rich.table import Table

    columns, rows = trial_rows(study)
    params = columns[3:-5]
    short = {p: p.rsplit(".", 1)[-1] for p in params}
    if len(set(short.values())) < len(short):
        short = {p: p for p in params}
    table = Table(title=f"study '{study.study_name}'")
    for name in ["#", "state", "val mIoU", *short.values(), "s", "pruned@"]:
        table.add_column(name, justify="left" if name == "state" else "right")
    for row in rows:
        cells = [
            row["number"],
            row["state"],
            row["value"],
            *(row[p] for p in params),
            row["duration_s"],
            row["pruned_at_epoch"],
        ]
        table.add_row(*(_fmt(c) for c in cells))
    return table


def _enough_for_importance(study: Any) -> str | None:
    """Why a param-importance plot cannot be made, or None when it can."""
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    if len(complete) < 2:
        return f"{len(complete)} completed trial(s), needs >= 2"
    if len({p for t in complete for p in t.params}) < 2:
        return "fewer than 2 searched parameters"
    return None


def _complete_at_all(study: Any) -> str | None:
    return None if any(t.state.name == "COMPLETE" for t in study.trials) else "no completed trial"


def _reported_at_all(study: Any) -> str | None:
    return None if any(t.intermediate_values for t in study.trials) else "no trial reported an epoch"


# plot file stem -> (optuna.visualization.matplotlib function name, precondition returning why not)
PLOTS: dict[str, tuple[str, Callable[[Any], str | None]]] = {
    "optimization_history": ("plot_optimization_history", _complete_at_all),
    "intermediate_values": ("plot_intermediate_values", _reported_at_all),
    "param_importances": ("plot_param_importances", _enough_for_importance),
}


def write_plots(study: Any, out: Path) -> list[Path]:
    """Optuna's matplotlib plots as PNGs (Agg backend); a plot that cannot be made is skipped, with why."""
    matplotlib = require("matplotlib", "train", "the tuning plots")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as ovm

    written = []
    for stem, (name, precondition) in PLOTS.items():
        reason = precondition(study)
        if reason is None:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # the matplotlib backend is marked experimental
                    ax = getattr(ovm, name)(study)
                figure = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
                figure.set_size_inches(8, 5)
                with atomic_path(out / f"{stem}.png") as tmp:
                    figure.savefig(tmp, dpi=100, bbox_inches="tight")
                plt.close(figure)
                written.append(out / f"{stem}.png")
                continue
            except Exception as exc:  # e.g. importance on degenerate data: a report, never a crash
                reason = f"{type(exc).__name__}: {exc}"
        log.info("skipped %s.png: %s", stem, reason)
    return written
