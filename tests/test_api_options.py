"""``condense(..., method_kwargs=..., normalization=...)``."""

from __future__ import annotations

import pytest
import torch

from condense.api import condense
from condense.normalization import Normalization

SMALL = {"ipc": 1, "steps": 2, "show_progress": False}


def test_method_kwargs_equal_plain_keyword_arguments(digits) -> None:
    hp = {"batch_real": 8, "model_kwargs": {"width": 8, "depth": 2}, "amp": None}
    a = condense(digits[0], method="dm", method_kwargs=hp, **SMALL)
    b = condense(digits[0], method="dm", **hp, **SMALL)
    assert torch.equal(a.images, b.images) and a.meta["hyperparameters"]["batch_real"] == 8
    with pytest.raises(ValueError, match="batch_real"):
        condense(digits[0], method="dm", method_kwargs=hp, batch_real=4, **SMALL)
    with pytest.raises(ValueError, match="no parameter"):
        condense(digits[0], method="dm", method_kwargs={"nope": 1}, **SMALL)


def test_normalization_passed_in_is_used_and_recorded(digits) -> None:
    shared = Normalization((0.3,), (0.2,))
    hp = {"batch_real": 8, "model_kwargs": {"width": 8, "depth": 2}, "amp": None}
    own = condense(digits[0], method="dm", method_kwargs=hp, **SMALL)
    given = condense(digits[0], method="dm", method_kwargs=hp, normalization=shared, **SMALL)
    assert given.normalization == shared and own.normalization != shared
    # init='real' picks the same images: in pixel space they agree before any step
    picked = condense(digits[0], method="random", ipc=1, normalization=shared, show_progress=False)
    assert picked.normalization == shared
    assert torch.allclose(picked.denormalized_images(), condense(digits[0], method="random", ipc=1, show_progress=False).denormalized_images(), atol=1e-5)
