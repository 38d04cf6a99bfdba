"""`routellm-gateway` and its subcommands as a user calls them: the help each prints."""

from __future__ import annotations

import pytest

from gateway.cli import main


@pytest.mark.parametrize("argv", [[], ["calibrate"], ["evaluate"], ["train"], ["distil"]])
def test_every_help_text_reads_as_written(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: routellm-gateway")
    assert "%%" not in text
    assert "%(" not in text


def test_evaluate_help_names_its_figures(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    assert "CPT(50%) and CPT(80%)" in " ".join(capsys.readouterr().out.split())
