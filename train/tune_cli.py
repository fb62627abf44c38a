"""`prodseg-tune`: declared with the other commands; the Optuna search itself is issue #7, not built yet."""

from __future__ import annotations

import sys


def main() -> None:
    """Say plainly that the tuner does not exist yet instead of failing with an ImportError."""
    print("error: prodseg-tune is not implemented yet (issue #7: Optuna search over the config's "
          "`search:` block); train single configurations with prodseg-train", file=sys.stderr)
    sys.exit(2)
