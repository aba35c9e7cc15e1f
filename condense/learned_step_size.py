"""A step size learned along with a synthetic set, and the network it was learned for."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from condense.errors import InvalidSyntheticSetError


@dataclass(frozen=True)
class LearnedStepSize:
    """The student step size a method learned (MTT's ``syn_lr``).

    A learned rate is a property of the student network: evaluation uses it
    only for the same architecture (``model`` with ``model_kwargs``).

    Attributes:
        value: the step size (finite, > 0).
        model: the student's network family (``"convnet"``, ...); ``None`` when unknown.
        model_kwargs: the student's keyword arguments (JSON-ready).
    """

    value: float
    model: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        v = self.value
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise InvalidSyntheticSetError(f"learned_lr.value must be a finite number > 0, got {v!r}")
        if self.model is not None and not isinstance(self.model, str):
            raise InvalidSyntheticSetError(f"learned_lr.model must be a name, got {self.model!r}")
        if not isinstance(self.model_kwargs, dict):
            raise InvalidSyntheticSetError(f"learned_lr.model_kwargs must be a mapping, got {self.model_kwargs!r}")
        try:
            json.dumps(self.model_kwargs)
        except (TypeError, ValueError) as exc:
            raise InvalidSyntheticSetError(f"learned_lr.model_kwargs is not JSON-ready: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        return {"value": float(self.value), "model": self.model, "model_kwargs": dict(self.model_kwargs)}

    @classmethod
    def from_dict(cls, data: Any) -> "LearnedStepSize":
        if not isinstance(data, dict) or set(data) - {"value", "model", "model_kwargs"} or "value" not in data:
            raise InvalidSyntheticSetError(f"learned_lr must be {{'value', 'model', 'model_kwargs'}}, got {data!r:.120}")
        return cls(data["value"], data.get("model"), data.get("model_kwargs") or {})
