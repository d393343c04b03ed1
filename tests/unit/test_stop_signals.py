"""The CLI's SIGINT/SIGTERM handler (pipeline.cli._stop); the stops themselves, on a real
server and real processes, are in tests/integration/test_batches.py and test_executor.py."""

from __future__ import annotations

import signal

import pytest

from pipeline import cli
from pipeline.errors import Terminated


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    monkeypatch.setattr(cli, "_stopping", False)


@pytest.mark.parametrize(
    ("sig", "raised"), [(signal.SIGTERM, Terminated), (signal.SIGINT, KeyboardInterrupt)]
)
def test_the_first_signal_raises_and_a_second_cannot_cut_the_stop_short(capfd, sig, raised):
    with pytest.raises(raised) as e:
        cli._stop(sig, None)
    assert isinstance(e.value, Terminated) == (sig == signal.SIGTERM)
    for later in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C again, or a parent's SIGTERM
        assert cli._stop(later, None) is None
    assert capfd.readouterr().err.count("already stopping") == 2
