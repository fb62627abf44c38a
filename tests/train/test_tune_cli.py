"""Until issue #7 lands, prodseg-tune says so in one line and exits 2 instead of an ImportError."""

import pytest

from prodseg.train.tune_cli import main


def test_tune_says_it_is_not_built_yet(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: prodseg-tune is not implemented yet")
