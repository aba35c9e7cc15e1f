"""Payload round-trip and the server's validation of hostile synthetic-set replies."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from flwr.app import Array, ConfigRecord, RecordDict

from condense.federated.payload import ARRAYS_KEY, CONFIG_KEY, encode_synthetic_set
from condense.federated.validation import PayloadLimits, PayloadRejected, validate_reply
from condense.normalization import Normalization
from condense.synthetic_set import SyntheticSet

SHAPE = (1, 8, 8)
NORM = Normalization((0.3,), (0.4,))


def make_set(n_per_class: int = 3, classes: tuple[int, ...] = (0, 2, 5), soft: bool = False) -> SyntheticSet:
    gen = torch.Generator().manual_seed(0)
    n = n_per_class * len(classes)
    images = torch.randn((n, *SHAPE), generator=gen)
    labels = torch.tensor(classes).repeat_interleave(n_per_class)
    soft_labels = torch.randn((n, 10), generator=gen) if soft else None
    meta = {"method": "dm", "ipc": n_per_class, "normalization": NORM.to_meta(), "selected_indices": [1, 2, 3]}
    return SyntheticSet(images, labels, 10, soft_labels, meta)


def reply(syn: SyntheticSet, encoding: str = "float32") -> RecordDict:
    arrays, config = encode_synthetic_set(syn, encoding)
    return RecordDict({ARRAYS_KEY: arrays, CONFIG_KEY: config})


LIMITS = PayloadLimits.for_run(SHAPE, 10, ipc=3)


@pytest.mark.parametrize("encoding,tol", [("float32", 1e-6), ("float16", 2e-3), ("uint8", None)])
def test_round_trip_each_encoding(encoding: str, tol: float | None) -> None:
    syn = make_set(soft=True)
    decoded = validate_reply(reply(syn, encoding), LIMITS)
    back = decoded.to_synthetic_set(NORM)
    pixels = syn.denormalized_images()
    err = (torch.from_numpy(decoded.images) - pixels).abs().max().item()
    if tol is None:  # uint8: half a quantization step of the channel's range
        tol = float(pixels.max() - pixels.min()) / 255 / 2 + 1e-5
    assert err <= tol
    assert torch.equal(back.labels, syn.labels)
    assert back.soft_labels is not None and back.soft_labels.shape == (len(syn), 10)
    assert torch.allclose(back.images, syn.images, atol=tol / 0.4 + 1e-5)  # same normalization on both sides


def test_encodings_shrink_the_payload() -> None:
    syn = make_set(n_per_class=20, classes=tuple(range(10)))
    sizes = {e: encode_synthetic_set(syn, e)[0].count_bytes() for e in ("float32", "float16", "uint8")}
    assert sizes["float16"] < 0.6 * sizes["float32"]
    assert sizes["uint8"] < 0.6 * sizes["float16"]


def test_private_meta_is_not_shared() -> None:
    _, config = encode_synthetic_set(make_set())
    assert "selected_indices" not in str(config["meta-json"])


def _tamper(content: RecordDict, **arrays: np.ndarray) -> RecordDict:
    record = content.array_records[ARRAYS_KEY]
    for key, value in arrays.items():
        record[key] = Array(value)
    return content


def hostile_payloads() -> dict[str, tuple[RecordDict, str]]:
    n = 9
    good = lambda: reply(make_set())  # noqa: E731
    nan_images = np.zeros((n, *SHAPE), np.float32)
    nan_images[0, 0, 0, 0] = np.nan
    cases = {
        "nan": (_tamper(good(), images=nan_images), "NaN"),
        "wrong shape": (_tamper(good(), images=np.zeros((n, 3, 8, 8), np.float32)), "shape"),
        "extra array": (_tamper(good(), raw_data=np.zeros(3, np.float32)), "unexpected"),
        "label out of range": (_tamper(good(), labels=np.full(n, 10, np.int64)), "labels must lie"),
        "negative label": (_tamper(good(), labels=np.full(n, -1, np.int64)), "labels must lie"),
        "float labels": (_tamper(good(), labels=np.zeros(n, np.float32)), "integers"),
        "too many images": (_tamper(good(), images=np.zeros((31, *SHAPE), np.float32), labels=np.zeros(31, np.int64)), "more than ipc"),
        "dtype vs encoding": (_tamper(good(), images=np.zeros((n, *SHAPE), np.float64)), "dtype"),
        "far over the size limit": (_tamper(good(), images=np.zeros((2000, *SHAPE), np.float32)), "over the limit"),
    }
    missing = good()
    del missing[CONFIG_KEY]
    cases["no config"] = (missing, "ConfigRecord")
    no_arrays = RecordDict({CONFIG_KEY: ConfigRecord({"encoding": "float32"})})
    cases["no arrays"] = (no_arrays, "ArrayRecord")
    uint8 = reply(make_set(), "uint8")
    uint8.config_records[CONFIG_KEY]["scale-lo"] = [float("nan")]
    cases["uint8 scale not finite"] = (uint8, "scale-lo")
    wrong_k = good()
    wrong_k.config_records[CONFIG_KEY]["num-classes"] = 100
    cases["wrong class count"] = (wrong_k, "num-classes")
    cases["one class over ipc"] = (_tamper(good(), labels=np.zeros(n, np.int64)), "more than ipc")
    word_scale = reply(make_set(), "uint8")
    word_scale.config_records[CONFIG_KEY]["scale-lo"] = ["a"]
    cases["uint8 scale not a number"] = (word_scale, "scale-lo")
    deep = good()
    deep.config_records[CONFIG_KEY]["meta-json"] = "[" * 3000  # json.loads raises RecursionError on this
    cases["meta-json nested too deep"] = (deep, "meta-json")
    long_meta = good()
    long_meta.config_records[CONFIG_KEY]["meta-json"] = json.dumps({"method": "dm", "pad": "x" * 5000})
    cases["meta-json too long"] = (long_meta, "meta-json")
    return cases


@pytest.mark.parametrize("case", sorted(hostile_payloads()))
def test_each_rule_rejects_its_hostile_payload(case: str) -> None:
    content, fragment = hostile_payloads()[case]
    with pytest.raises(PayloadRejected, match=fragment):
        validate_reply(content, LIMITS)


def test_garbage_bytes_are_rejected_not_crashing() -> None:
    content = reply(make_set())
    arr = content.array_records[ARRAYS_KEY]["images"]
    content.array_records[ARRAYS_KEY]["images"] = Array(dtype=arr.dtype, shape=arr.shape, stype=arr.stype, data=b"\x93NUMPY garbage")
    with pytest.raises(PayloadRejected, match="decoded"):
        validate_reply(content, LIMITS)


def test_only_shared_metadata_with_plain_values_reaches_the_server() -> None:
    content = reply(make_set())
    content.config_records[CONFIG_KEY]["meta-json"] = json.dumps(
        {"method": "dm", "ipc": 3, "formation_factor": 4, "normalization": {"mean": [9.0]}, "seed": {"nested": 1}})
    decoded = validate_reply(content, LIMITS)
    assert decoded.meta == {"method": "dm", "ipc": 3}
    assert len(decoded.to_synthetic_set(NORM).training_tensors()[0]) == 9  # not expanded by a client's factor


def _formation_set(factor: int = 2) -> SyntheticSet:
    syn = make_set(soft=True)
    return SyntheticSet(syn.images, syn.labels, 10, syn.soft_labels, dict(syn.meta), formation_factor=factor,
                        normalization=syn.normalization)


def test_a_set_in_a_formation_travels_packed_and_the_server_expands_it() -> None:
    syn = _formation_set(2)
    content = reply(syn)
    assert content.config_records[CONFIG_KEY]["formation-factor"] == 2
    assert encode_synthetic_set(syn)[0].count_bytes() == encode_synthetic_set(make_set(soft=True))[0].count_bytes()
    back = validate_reply(content, LIMITS).to_synthetic_set(NORM)
    assert back.formation_factor == 2 and len(back) == 9
    x, y, soft = back.training_tensors()
    assert x.shape == (36, *SHAPE) and torch.equal(y, syn.labels.repeat_interleave(4))
    assert soft is not None and torch.allclose(soft, syn.soft_labels.repeat_interleave(4, 0))


@pytest.mark.parametrize("factor,fragment", [(3, "divide"), (0, "outside"), (16, "outside"), (2.0, "integer"),
                                             (True, "integer"), ("2", "integer")])
def test_a_bad_formation_factor_is_rejected(factor: object, fragment: str) -> None:
    content = reply(_formation_set(2))
    content.config_records[CONFIG_KEY]["formation-factor"] = factor
    with pytest.raises(PayloadRejected, match=fragment):
        validate_reply(content, LIMITS)


def test_the_server_bounds_the_formation_factor_it_accepts() -> None:
    import dataclasses

    content = reply(_formation_set(4))
    assert validate_reply(content, LIMITS).formation_factor == 4
    with pytest.raises(PayloadRejected, match="outside 1..2"):
        validate_reply(content, dataclasses.replace(LIMITS, max_formation_factor=2))


@pytest.mark.parametrize("shape", [(9, 9), (8, 10), (9,)])
def test_soft_labels_of_the_wrong_shape_are_rejected(shape: tuple[int, ...]) -> None:
    content = reply(make_set(soft=True))
    content.array_records[ARRAYS_KEY]["soft_labels"] = Array(np.zeros(shape, np.float32))
    with pytest.raises(PayloadRejected, match="soft_labels"):
        validate_reply(content, LIMITS)


def test_server_training_uses_soft_labels_and_expands_formations() -> None:
    from condense.federated.server_training import union

    hard = make_set()
    soft = _formation_set(2)
    x, y, logits = union([hard, soft])
    assert x.shape[0] == 9 + 36 and logits is not None and logits.shape == (45, 10)
    probs = torch.softmax(logits, 1)
    assert torch.equal(probs[:9], torch.nn.functional.one_hot(hard.labels, 10).float())  # hard rows stay one-hot
    assert torch.allclose(probs[9:], torch.softmax(soft.soft_labels, 1).repeat_interleave(4, 0))
    assert union([hard])[2] is None
