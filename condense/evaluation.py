"""The standard protocol: train fresh networks on a synthetic set, test them on real data."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch

from condense.augment import SiameseAugment, default_strategy
from condense.data.adapters import as_tensor_data
from condense.errors import InvalidDataError, require_int
from condense.models import build_model
from condense.progress import progress
from condense.synthetic_set import SyntheticSet
from condense.training import TrainConfig, accuracy, train_classifier


@dataclass
class EvaluationResult:
    """Test accuracy of ``models`` networks trained from scratch on one synthetic set."""

    accuracies: list[float]
    epochs: int
    model: str
    dsa: bool
    soft_labels: bool
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def mean(self) -> float:
        """Mean test accuracy over the models (a fraction in ``[0, 1]``)."""
        return statistics.fmean(self.accuracies)

    @property
    def std(self) -> float:
        """Population standard deviation of the accuracies (0 for a single model)."""
        return statistics.pstdev(self.accuracies) if len(self.accuracies) > 1 else 0.0

    @property
    def models(self) -> int:
        """How many networks were trained and tested."""
        return len(self.accuracies)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: every field plus ``accuracy_mean``, ``accuracy_std`` and ``models``."""
        out = asdict(self)
        out.update(accuracy_mean=self.mean, accuracy_std=self.std, models=self.models)
        return out

    def __str__(self) -> str:
        soft = ", soft labels" if self.soft_labels else ""
        return f"{100 * self.mean:.2f} ± {100 * self.std:.2f}% over {self.models} {self.model}(s), {self.epochs} epochs{soft}"


def evaluate(
    syn: SyntheticSet,
    test_data: Any,
    models: int = 5,
    epochs: int = 300,
    seed: int = 0,
    model: str = "convnet",
    model_kwargs: dict[str, Any] | None = None,
    dsa: bool = True,
    dsa_strategy: str | None = None,
    config: TrainConfig | None = None,
    lr: float | str = "auto",
    device: str | torch.device = "cpu",
    show_progress: bool = True,
) -> EvaluationResult:
    """Train ``models`` fresh networks on ``syn`` and report their accuracy on ``test_data``.

    Test images are normalized with the set's ``normalization``
    (those of the training data the set was made from). Soft labels are used
    when the set has them. Model ``i`` is seeded with ``seed + i``.

    ``lr="auto"`` trains with the step size the method learned along with the
    images when the set records one (MTT's ``learned_lr``, as the MTT
    reference evaluates) and the evaluation network is the architecture it was
    learned for; otherwise with ``config.lr`` (0.01). A learned rate is a
    property of the student network: one learned on a width-32 ConvNet trains
    a width-128 one badly (MNIST IPC 1: 82.6 % against 87.2 % at 0.01). A number
    overrides both. The rate used is in ``result.extra["lr"]``, and why in
    ``result.extra["lr_source"]``.
    """
    models = require_int("models", models, 1)  # 0 would end in a StatisticsError on an empty list
    syn.validate()
    test = as_tensor_data(test_data, num_classes=syn.num_classes, name="test data")
    if test.image_shape[0] != syn.image_shape[0] or (
        syn.formation_factor == 1 and test.image_shape != syn.image_shape
    ):
        raise InvalidDataError(
            f"test images have shape {test.image_shape} (C, H, W) but the synthetic set's are {syn.image_shape}: "
            "evaluate a set on the dataset it was made from"
        )
    norm = syn.normalization
    x_test = norm.apply(test.x) if norm else test.x
    x_syn, y_syn, soft = syn.training_tensors()
    config = replace(config or TrainConfig(), epochs=epochs)
    lr_source = "given"
    if lr == "auto":
        lr_source = learned_lr_source(syn, model, model_kwargs, tuple(x_test.shape[1:]))
        if lr_source == "learned":
            config.lr = float(syn.learned_lr.value)  # type: ignore[union-attr]
    elif isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr > 0:
        config.lr = float(lr)
    else:
        raise ValueError(f"lr must be 'auto' or a positive number, got {lr!r}")
    augment = SiameseAugment(dsa_strategy or default_strategy(x_syn.shape[1])) if dsa else None
    accs = []
    for i in progress(range(models), show_progress, desc="evaluate"):
        torch.manual_seed(seed + i)
        gen = torch.Generator().manual_seed(seed + i)
        net = build_model(model, tuple(x_test.shape[1:]), syn.num_classes, **(model_kwargs or {}))
        train_classifier(net, x_syn, y_syn, config, soft, augment, device, gen)
        accs.append(accuracy(net, x_test, test.y, device))
    return EvaluationResult(accs, epochs, model, dsa, soft is not None, extra={"lr": config.lr, "lr_source": lr_source})


def learned_lr_source(syn: SyntheticSet, model: str, model_kwargs: dict[str, Any] | None, shape: tuple[int, ...]) -> str:
    """``"learned"`` when ``lr="auto"`` may train with the set's learned step size on this network, else why not."""
    if syn.learned_lr is None:
        return "default: the set records no learned step size"
    params = {"model": syn.learned_lr.model, "model_kwargs": syn.learned_lr.model_kwargs}
    if params["model"] is None:  # a set made elsewhere: no record of the student, trust the rate
        return "learned"
    # Same architecture = same module tree (layer types and sizes), whatever the spelling of the kwargs.
    # Built on the meta device: no memory, no RNG draws, and a hostile record cannot allocate anything.
    try:
        with torch.device("meta"):
            student = build_model(params["model"], shape, syn.num_classes, **(params.get("model_kwargs") or {}))
            evaluated = build_model(model, shape, syn.num_classes, **(model_kwargs or {}))
    except (TypeError, ValueError, KeyError) as err:
        return f"default: the set's record of its student network is not a network here ({err})"
    if repr(student) == repr(evaluated):
        return "learned"
    return f"default: the step size was learned for {params['model']} {params.get('model_kwargs') or {}}, not {model} {model_kwargs or {}}"
