"""`prodseg-data`: synthetic shelves and videos, format conversion, dataset checks."""

from __future__ import annotations

import click

from prodseg.cli import OneLineUsageGroup, setup_logging


@click.group(cls=OneLineUsageGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool) -> None:
    """Datasets and shelf videos for prodseg (all offline)."""
    setup_logging(verbose)


def _register() -> None:
    # Each command lives next to the code it drives; this module only assembles the group.
    from prodseg.data.formats.commands import check, convert
    from prodseg.data.synth.commands import synth, video

    for cmd in (synth, video, convert, check):
        main.add_command(cmd)


_register()
