"""routellm-classifier: argument and settings handling (the server itself is tested elsewhere)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from classifier import cli, logs


def test_bad_setting_exits_2_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ROUTELLM_BERT_DTYPE", "fp8")
    assert cli.main([]) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0
    assert "ROUTELLM_BERT_DTYPE='fp8' is not supported: use float32, bfloat16, int8 or auto" in err


def test_runs_uvicorn_with_loopback_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    seen: dict[str, Any] = {}
    monkeypatch.delenv("ROUTELLM_BERT_DTYPE", raising=False)
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))
    assert cli.main(["--model", "/some/dir", "--port", "9999"]) == 0
    assert (seen["host"], seen["port"]) == ("127.0.0.1", 9999)
    assert (seen["loop"], seen["http"]) == ("uvloop", "httptools")
    assert seen["app"].state.service.settings.model == "/some/dir"


def test_service_settings_reach_the_app_and_the_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    seen: dict[str, Any] = {}
    monkeypatch.delenv("ROUTELLM_BERT_DTYPE", raising=False)
    monkeypatch.setenv("ROUTELLM_CLASSIFIER_MAX_INPUTS", "3")
    monkeypatch.setenv("ROUTELLM_LOG_FORMAT", "json")
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))
    # Recorded, not applied: JSON lines on this process's stderr would outlive the test.
    monkeypatch.setattr(logs, "configure_logging", lambda fmt: seen.update(configured=fmt))
    assert cli.main(["--model", "/some/dir"]) == 0
    assert seen["app"].state.service.service_settings.max_inputs == 3
    assert seen["configured"] == "json"
    assert seen["log_config"] == logs.logging_config("json")


def test_bad_service_setting_exits_2_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ROUTELLM_BERT_DTYPE", raising=False)
    monkeypatch.setenv("ROUTELLM_CLASSIFIER_MAX_BODY_BYTES", "12")
    assert cli.main([]) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0
    assert "ROUTELLM_CLASSIFIER_MAX_BODY_BYTES='12' is not valid" in err


def test_python_m_classifier_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "classifier", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    assert "--model" in result.stdout


def test_bad_setting_via_python_m_has_no_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "classifier"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"ROUTELLM_BERT_TIMEOUT": "soon", "PATH": ""},
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "ROUTELLM_BERT_TIMEOUT='soon' is not valid" in result.stderr
