"""Optional integrations: say which extra to install when one is missing."""

from __future__ import annotations

import importlib.util

from condense.errors import CondenseError


class MissingExtraError(CondenseError):
    """An optional dependency of a sub-command is not installed."""


def require_extra(extra: str, module: str, command: str) -> None:
    """Raise :class:`MissingExtraError` naming ``pip install 'condense[extra]'`` when ``module`` is absent."""
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module set to None in sys.modules
        found = False
    if not found:
        raise MissingExtraError(f"{command} needs the '{extra}' extra ({module} is not installed): "
                                f"pip install 'condense[{extra}]'")
