"""What a differentially private condensation run guarantees, as recorded in a set.

The core creates the record type; the privacy mechanism fills it. A set
without a record makes no privacy claim.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from condense.errors import InvalidSyntheticSetError


@dataclass(frozen=True)
class PrivacyRecord:
    """(epsilon, delta)-DP of the mechanism that touched the private data.

    Attributes:
        mechanism: e.g. ``"gaussian-statistic"``.
        epsilon, delta: the guarantee (epsilon >= 0, 0 <= delta < 1).
        accountant: which accountant computed epsilon (``"rdp"``, ``"prv"``, ...).
        sampling_rate: Poisson sampling rate of each step, in (0, 1].
        steps: steps the accountant composed.
        clip: per-sample clipping norm C (> 0).
        noise_multiplier: sigma, the noise's std in units of C (>= 0).
        public: what was treated as public (``"normalization"``, ``"counts"``, ``"init"``...).
    """

    mechanism: str
    epsilon: float
    delta: float
    accountant: str
    sampling_rate: float
    steps: int
    clip: float
    noise_multiplier: float
    public: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> "PrivacyRecord":
        """Raise :class:`InvalidSyntheticSetError` naming the first field of the wrong type or range."""
        for name in ("mechanism", "accountant"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise InvalidSyntheticSetError(f"privacy.{name} must be a non-empty string, got {getattr(self, name)!r}")
        for name in ("epsilon", "delta", "sampling_rate", "clip", "noise_multiplier"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise InvalidSyntheticSetError(f"privacy.{name} must be a finite number, got {value!r}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
            raise InvalidSyntheticSetError(f"privacy.steps must be an integer >= 0, got {self.steps!r}")
        checks = [("epsilon", self.epsilon >= 0, ">= 0"), ("delta", 0 <= self.delta < 1, "in [0, 1)"),
                  ("sampling_rate", 0 < self.sampling_rate <= 1, "in (0, 1]"), ("clip", self.clip > 0, "> 0"),
                  ("noise_multiplier", self.noise_multiplier >= 0, ">= 0")]
        for name, ok, rule in checks:
            if not ok:
                raise InvalidSyntheticSetError(f"privacy.{name} must be {rule}, got {getattr(self, name)!r}")
        if not isinstance(self.public, tuple) or not all(isinstance(p, str) for p in self.public):
            raise InvalidSyntheticSetError(f"privacy.public must be a tuple of strings, got {self.public!r}")
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (``public`` as a list)."""
        out = asdict(self)
        out["public"] = list(self.public)
        return out

    @classmethod
    def from_dict(cls, data: Any) -> "PrivacyRecord":
        """Read what :meth:`to_dict` wrote (a file's or a payload's); anything else raises
        :class:`InvalidSyntheticSetError`."""
        if not isinstance(data, dict):
            raise InvalidSyntheticSetError(f"privacy must be a JSON object, got {type(data).__name__}")
        names = {f.name for f in fields(cls)}
        unknown, missing = sorted(set(data) - names), sorted(names - set(data) - {"public"})
        if unknown or missing:
            raise InvalidSyntheticSetError(f"privacy record: unknown fields {unknown}, missing fields {missing}")
        public = data.get("public", [])
        if not isinstance(public, (list, tuple)):
            raise InvalidSyntheticSetError(f"privacy.public must be a list of strings, got {public!r}")
        return cls(**{**data, "public": tuple(public)})
