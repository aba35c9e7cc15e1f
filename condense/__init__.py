"""condense: dataset distillation for continual and federated learning.

>>> from condense import condense, evaluate, load_dataset
>>> train, test = load_dataset("digits")
>>> syn = condense(train, method="dm", ipc=10, steps=200)
>>> print(evaluate(syn, test, models=3, epochs=100))
"""

from condense.api import condense, make_condenser
from condense.data import TensorData, as_tensor_data, load_dataset
from condense.errors import (
    CondenseError,
    InsufficientSamplesError,
    InvalidDataError,
    InvalidSyntheticSetError,
    UnknownMethodError,
)
from condense.evaluation import EvaluationResult, evaluate
from condense.normalization import Normalization
from condense.privacy_record import PrivacyRecord
from condense.registry import available_methods, get_method
from condense.statistic import ClassStatistic, StatisticUnsupportedError
from condense.synthetic_set import SyntheticSet

__version__ = "0.1.0"

__all__ = [
    "ClassStatistic",
    "CondenseError",
    "EvaluationResult",
    "InsufficientSamplesError",
    "InvalidDataError",
    "InvalidSyntheticSetError",
    "Normalization",
    "PrivacyRecord",
    "StatisticUnsupportedError",
    "SyntheticSet",
    "TensorData",
    "UnknownMethodError",
    "as_tensor_data",
    "available_methods",
    "condense",
    "evaluate",
    "get_method",
    "load_dataset",
    "make_condenser",
]
