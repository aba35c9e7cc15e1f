"""Issue 20, problem 7: dependency notices the user can do nothing about stay off the screen."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from condense.quiet_dependencies import quiet_known_notices


def test_cl_command_prints_no_dependency_warning():
    pytest.importorskip("avalanche")
    env = {**os.environ, "PYTHONWARNINGS": ""}
    run = subprocess.run(
        [sys.executable, "-m", "condense.cli", "cl", "--data", "digits", "--buffer", "none", "--epochs", "1",
         "--quiet", "--threads", "1"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    # Before: qpsolvers' "no QP solver found" on import and Avalanche's "No loggers specified".
    assert "Warning" not in run.stderr and "warnings.warn" not in run.stderr, run.stderr
    assert "final accuracy" in run.stdout


def test_flower_deprecation_of_run_simulation_is_dropped_and_others_are_kept(caplog):
    pytest.importorskip("flwr")
    from flwr.supercore.logger import FLOWER_LOGGER, warn_deprecated_feature

    quiet_known_notices()
    quiet_known_notices()  # idempotent
    assert FLOWER_LOGGER.filters.count(FLOWER_LOGGER.filters[-1]) == 1
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    handler = Collect()
    FLOWER_LOGGER.addHandler(handler)
    try:
        warn_deprecated_feature("The `run_simulation` function is deprecated and will be removed")
        warn_deprecated_feature("something else is deprecated")
    finally:
        FLOWER_LOGGER.removeHandler(handler)
    assert len(seen) == 1 and "something else" in seen[0]
    # Ray: the current behaviour is chosen explicitly, so it does not print its FutureWarning.
    assert os.environ["RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO"] == "0"
    assert "ignore:no QP solver found:UserWarning" in os.environ["PYTHONWARNINGS"]
