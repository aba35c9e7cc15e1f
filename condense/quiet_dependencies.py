"""Silence the dependency notices a condense user can do nothing about.

Each entry below was seen on every run of a ``condense`` command and says
nothing about the user's run: Flower's notice that ``run_simulation`` is
deprecated (condense calls it on purpose for in-process simulation; ``flwr
run`` is documented for deployments), Ray's FutureWarning about accelerator
environment variables on CPU-only runs, qpsolvers' note that no QP solver is
installed (Avalanche imports it for GEM-style strategies condense does not
use), and Avalanche's note that an evaluation plugin has no loggers (condense
reads the metrics itself). Anything else still reaches the screen.

:func:`quiet_known_notices` is called by the ``condense`` command and the demo;
library users may call it too.
"""

from __future__ import annotations

import logging
import os
import warnings

# (category, regular expression matched against the start of the message)
KNOWN_WARNINGS: tuple[tuple[type[Warning], str], ...] = (
    (UserWarning, r"no QP solver found"),
    (UserWarning, r"No loggers specified, metrics will not be logged"),
    (FutureWarning, r"Tip: In future versions of Ray, Ray will no longer override accelerator"),
)
# Flower logs these through its "flwr" logger (not the warnings module).
KNOWN_LOG_MESSAGES: tuple[str, ...] = ("The `run_simulation` function is deprecated",)


class _DropKnownRecords(logging.Filter):
    """Drops Flower log records about deprecations condense chose knowingly."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not any(known in text for known in KNOWN_LOG_MESSAGES)


_FILTER = _DropKnownRecords()


def quiet_known_notices() -> None:
    """Install the filters (idempotent); must run before avalanche, flwr or ray are imported to catch import-time notices."""
    for category, pattern in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern, category=category)
    # Ray reads this in the driver and in its workers (they inherit the environment): the
    # current behaviour is kept, and the notice about its future change is not printed.
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    # Ray workers inherit PYTHONWARNINGS, so warnings raised inside ClientApps are filtered too.
    # (-W syntax: the message is a literal prefix, and neither "," nor ":" may appear in it.)
    prefixes = [(category, pattern.split(",")[0].split(":")[0]) for category, pattern in KNOWN_WARNINGS]
    extra = ",".join(f"ignore:{prefix}:{category.__name__}" for category, prefix in prefixes)
    current = os.environ.get("PYTHONWARNINGS", "")
    if extra not in current:
        os.environ["PYTHONWARNINGS"] = f"{current},{extra}" if current else extra
    logger = logging.getLogger("flwr")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    for handler in logger.handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
