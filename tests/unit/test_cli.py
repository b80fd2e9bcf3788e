"""The console entry point: bad usage is one message and exit code 2, never a traceback."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("argv", [["study", "zoo:lenet5-mnist"], ["study", "--no-such-option"],
                                  ["no-such-command"]])  # fmt: skip
def test_cli_usage_errors_are_one_message_and_exit_2(argv, capsys):
    from edgeshrink.cli import main

    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert "Traceback" not in err and err.strip()
