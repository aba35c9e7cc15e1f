"""Exceptions raised by condense.

Every error a user can trigger with bad input is a ``CondenseError`` (a
``ValueError``), and its message names the problem.
"""

from __future__ import annotations

import operator


class CondenseError(ValueError):
    """Base class for every input error condense raises on purpose."""


class InvalidDataError(CondenseError):
    """The input data is empty, mis-shaped, non-finite or badly labelled."""


class InsufficientSamplesError(CondenseError):
    """A class has fewer real samples than the requested images per class."""


class InvalidSyntheticSetError(CondenseError):
    """A synthetic set (in memory, in a file or in a payload) is malformed."""


class UnknownMethodError(CondenseError):
    """A method name that is not in the registry."""


class InvalidParameterError(CondenseError):
    """A hyperparameter of the wrong type or out of its range."""


def require_int(name: str, value: object, minimum: int) -> int:
    """``value`` as an ``int`` if it is an integer ``>= minimum``; else :class:`InvalidParameterError`.

    Floats (even ``2.0``) and bools are refused: they are usually a mistake, and
    slicing or ``range`` would fail on them later with a less helpful message.
    """
    try:
        if isinstance(value, bool):
            raise TypeError
        number = operator.index(value)  # ints, numpy ints, 0-d integer tensors; not floats
    except TypeError:
        raise InvalidParameterError(f"{name} must be an integer >= {minimum}, got {value!r} ({type(value).__name__})") from None
    if number < minimum:
        raise InvalidParameterError(f"{name} must be an integer >= {minimum}, got {number}")
    return number
