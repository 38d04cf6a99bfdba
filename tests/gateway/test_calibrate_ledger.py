"""`routellm-gateway calibrate --from-ledger`: the threshold from recorded scores, and a table."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from gateway import cli
from gateway.ledger.writer import Ledger
from gateway.settings.load import load_settings
from tests.gateway.rows import row

PRICES = '{"gpt-4o": {"input": 2.5, "output": 10}, "gpt-4o-mini": {"input": 0.15, "output": 0.6}}'


def test_threshold_and_nearby_table_from_the_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {"ROUTELLM_LEDGER": str(tmp_path / "l.db"), "ROUTELLM_PRICES": PRICES}
    rates = [0.05, 0.12, 0.3, 0.33, 0.41, 0.5, 0.62, 0.7, 0.88, 0.95]
    ledger = Ledger.open(load_settings(env))
    for i, rate in enumerate(rates):
        # rows from before the ledger named routers count as the default router's
        named = {"router": "router"} if i % 2 else {}
        ledger.record(row("gpt-4o" if rate >= 0.5 else "gpt-4o-mini", rate, **named))
    ledger.record(row("gpt-4o-mini", None, reason="direct"))  # no score: not part of calibration
    # other routers' scores are on other scales: MF's win rates, a named router's checkpoint
    for _ in range(6):
        ledger.record(row("gpt-4o", 0.99, router="router-mf", requested="router-mf-0.5"))
    ledger.record(row("gpt-4o", 0.97, router="tuned", requested="tuned"))
    asyncio.run(ledger.aclose())
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    assert cli.main(["calibrate", "--from-ledger", "--since", "1h", "--strong-share", "0.3"]) == 0
    out = capsys.readouterr().out.splitlines()
    expected = float(np.quantile(rates, 0.7))
    assert out[0] == f"{expected:.5f}"
    assert "10 requests classified by the default router" in out[1]
    table = [line.split() for line in out[3:]]
    thresholds = [float(cells[0]) for cells in table]
    assert thresholds == sorted(thresholds)
    assert len(table) == 5
    middle = table[2]
    assert float(middle[0]) == pytest.approx(expected, abs=5e-4)
    assert middle[1] == "30%"  # the share asked for, on the recorded traffic
    shares = [int(cells[1].rstrip("%")) for cells in table]
    assert shares == sorted(shares, reverse=True)


def test_from_ledger_with_nothing_recorded_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ROUTELLM_LEDGER", str(tmp_path / "empty.db"))
    assert cli.main(["calibrate", "--from-ledger"]) == 2
    assert "no classified requests" in capsys.readouterr().err
    monkeypatch.setenv("ROUTELLM_LEDGER", "off")
    assert cli.main(["calibrate", "--from-ledger"]) == 2
    assert "ROUTELLM_LEDGER=off" in capsys.readouterr().err
