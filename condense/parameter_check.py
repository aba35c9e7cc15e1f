"""Check a method's hyperparameters by name and type before the method is built.

The constructors keep to the estimator contract (they only store what they are
given), so a misspelt name or a value of the wrong type would otherwise fail
deep inside ``fit`` with a ``TypeError``. Types are read from the constructor's
annotations (``float``, ``int | None``, ``bool | str``, ``dict[str, Any] | None`` ...);
an annotation this module does not know is not checked.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

from condense.errors import InvalidParameterError

_SIMPLE = {"int", "float", "str", "bool", "None", "dict", "list", "tuple"}


def _accepts(kind: str, value: Any) -> bool:
    if kind == "None":
        return value is None
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if kind == "str":
        return isinstance(value, str)
    if kind == "dict":
        return isinstance(value, dict)
    return isinstance(value, (list, tuple))  # list, tuple (JSON gives lists)


def annotation_kinds(annotation: Any) -> set[str] | None:
    """The simple kinds of an annotation such as ``"int | None"``; ``None`` when it names anything else."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", repr(annotation))
    kinds = set()
    for part in text.split("|"):
        name = part.strip().split("[", 1)[0]
        if name not in _SIMPLE:
            return None
        kinds.add(name)
    return kinds


def constructor_parameters(cls: type) -> dict[str, inspect.Parameter]:
    """Every named constructor parameter of ``cls`` and its bases (the nearest class wins)."""
    found: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        for p in inspect.signature(init).parameters.values():
            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                found.setdefault(p.name, p)
    return found


def check_parameters(method: str, cls: type, params: dict[str, Any]) -> None:
    """Raise :class:`InvalidParameterError` for a name ``cls`` does not take or a value of the wrong type."""
    known = constructor_parameters(cls)
    unknown = sorted(k for k in params if k not in known)
    if unknown:
        raise InvalidParameterError(
            f"method '{method}' takes no parameter(s) {', '.join(unknown)}; it takes {', '.join(sorted(known))}"
        )
    for name, value in params.items():
        kinds = annotation_kinds(known[name].annotation)
        if kinds is None or any(_accepts(kind, value) for kind in kinds):
            continue
        default = known[name].default
        raise InvalidParameterError(
            f"method '{method}': {name} must be {' or '.join(sorted(kinds))}, got {value!r} ({type(value).__name__})"
            + ("" if default is inspect.Parameter.empty else f"; its default is {default!r}")
        )
