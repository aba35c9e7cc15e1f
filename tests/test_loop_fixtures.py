"""The loop's numbers are pinned: every registry method's small digits run
(:mod:`tests.loop_fixtures`) gives exactly the set committed under
``tests/fixtures/loop/`` on the CPU. A change that moves any number must
regenerate the fixtures and say why in its commit."""

from __future__ import annotations

import pytest
import torch

from condense.registry import available_methods
from condense.synthetic_set import SyntheticSet
from loop_fixtures import FIXTURES, run


@pytest.mark.parametrize("name", [m.name for m in available_methods()])
def test_method_reproduces_its_pinned_set(name, tmp_path) -> None:
    pinned = SyntheticSet.load(FIXTURES / f"{name}.npz")
    now = run(name, tmp_path)
    assert torch.equal(now.labels, pinned.labels)
    assert torch.equal(now.images, pinned.images), f"{name}: max |diff| {float((now.images - pinned.images).abs().max())}"
    assert (now.soft_labels is None) == (pinned.soft_labels is None)
    if now.soft_labels is not None:
        assert torch.equal(now.soft_labels, pinned.soft_labels)
