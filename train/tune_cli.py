"""`prodseg-tune`: options -> base config and TuneOptions -> `tune`; prints the trials table and the best."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from prodseg.cli import OneLineUsage, handle_errors, setup_logging


@click.command(cls=OneLineUsage, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config", required=True, help="YAML config with a search: block (path or shipped config name)."
)
@click.option("--trials", type=click.IntRange(min=1), required=True, help="Trials THIS process runs.")
@click.option("--storage", help="Optuna RDB URL shared by all workers (default sqlite:///<out>/tune.db).")
@click.option("--study", "study_name", help="Study name (default: the config file's name).")
@click.option("--timeout", type=click.FloatRange(min=0), help="Start no new trial after S seconds.")
@click.option("--data", help="Dataset folder (overrides data.root).")
@click.option("--epochs", type=click.IntRange(min=1), help="Epochs per trial (overrides num_epochs).")
@click.option(
    "--out",
    default="runs/tune",
    show_default=True,
    help="Folder for trials/, tune.db, best_config.yaml, trials.csv and plots.",
)
@click.option(
    "--pruner-warmup-epochs",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Epochs a trial runs before it can be pruned.",
)
@click.option(
    "--startup-trials",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="Trials completed before the median pruner prunes anything.",
)
@click.option("--seed", type=int, help="TPE sampler seed (give each worker of a shared study its own).")
@click.option("-v", "--verbose", is_flag=True)
@handle_errors
def main(config: str, study_name: str | None, verbose: bool, **options: Any) -> None:
    """Search hyperparameters with Optuna (median pruning on val mIoU) and write the best config."""
    setup_logging(verbose)
    from rich.console import Console

    from prodseg.train.cli import build_config, resolve_config_path
    from prodseg.train.tune import TuneOptions, finish, tune
    from prodseg.train.tune_report import trials_table

    base = build_config(config, None, {k: options[k] for k in ("data", "epochs")})
    source = str(resolve_config_path(config))
    opts = TuneOptions(
        out=Path(options["out"]),
        trials=options["trials"],
        storage=options["storage"],
        study_name=study_name or Path(source).stem,
        timeout=options["timeout"],
        startup_trials=options["startup_trials"],
        warmup_epochs=options["pruner_warmup_epochs"],
        seed=options["seed"],
    )
    result = tune(base, opts, source)
    Console(width=160).print(trials_table(result.study))
    states = [t.state.name for t in result.study.trials if t.number in result.ran]
    click.echo(
        f"this process: {len(states)} trial(s): {states.count('COMPLETE')} complete, "
        f"{states.count('PRUNED')} pruned, {states.count('FAIL')} failed; "
        f"study '{result.study.study_name}' holds {len(result.study.trials)} trial(s)"
    )
    if result.best_config is not None:
        best = result.study.best_trial
        click.echo(f"best trial {best.number}: val mIoU {best.value:.4f}")
        for key, value in best.params.items():
            click.echo(f"  {key}: {value}")
        click.echo(f"best config: {result.best_config}")
    click.echo(f"reports: {', '.join(str(p) for p in result.files)}")
    finish(result)


if __name__ == "__main__":
    main()
