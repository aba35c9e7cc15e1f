"""Typed SyntheticSet fields: what behaviour reads, saved and loaded; files of
the previous format (facts in meta) still load; contradictions are refused."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from condense.errors import InvalidSyntheticSetError
from condense.learned_step_size import LearnedStepSize
from condense.normalization import Normalization
from condense.privacy_record import PrivacyRecord
from condense.serialization import write_npz_atomic
from condense.synthetic_set import SyntheticSet

V1 = Path(__file__).parent / "fixtures" / "format_v1"
NORM = Normalization((0.5,), (0.25,))
RECORD = PrivacyRecord("gaussian-statistic", 4.0, 1e-5, "rdp", 0.01, 1000, 1.0, 1.1, ("normalization",))


def small(**fields) -> SyntheticSet:
    return SyntheticSet(torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 3]), 4, **fields)


def test_files_of_the_previous_format_load_into_typed_fields() -> None:
    idm, mtt = SyntheticSet.load(V1 / "idm.npz"), SyntheticSet.load(V1 / "mtt.npz")
    with np.load(V1 / "idm.npz") as npz:
        old = json.loads(str(npz["meta_json"]))
    assert "fields" not in old and old["meta"]["formation_factor"] == 2  # really the old format
    assert idm.formation_factor == 2 and "formation_factor" not in idm.meta
    assert idm.normalization == Normalization(tuple(old["meta"]["normalization"]["mean"]), tuple(old["meta"]["normalization"]["std"]))
    assert idm.training_tensors()[0].shape[0] == 4 * len(idm)
    assert mtt.learned_lr is not None and mtt.learned_lr.model == "convnet" and mtt.learned_lr.value > 0
    assert mtt.has_soft_labels and mtt.privacy is None


def test_typed_fields_survive_save_and_load(tmp_path) -> None:
    syn = small(formation_factor=2, learned_lr=LearnedStepSize(0.02, "convnet", {"width": 8}), normalization=NORM,
                privacy=RECORD)
    back = SyntheticSet.load(syn.save(tmp_path / "s.npz"))
    assert back.typed_fields() == syn.typed_fields() and back.privacy == RECORD
    assert torch.allclose(back.denormalized_images(), syn.images * 0.25 + 0.5)
    assert dataclasses.replace(back, meta={"x": 1}).formation_factor == 2
    assert back.subset([0, 1]).typed_fields() == syn.typed_fields()


@pytest.mark.parametrize("make, message", [
    (lambda: small(soft_labels=torch.zeros(4, 3)), "soft_labels must have shape"),
    (lambda: small(formation_factor=3), "does not divide"),
    (lambda: small(formation_factor=2.0), "formation_factor"),
    (lambda: small(normalization=Normalization((0.1, 0.2, 0.3), (1.0, 1.0, 1.0))), "1 channel"),
    (lambda: small(formation_factor=2, meta={"formation_factor": 4}), "contradicts"),
    (lambda: small(normalization=NORM, meta={"normalization": {"mean": [0.1], "std": [1.0]}}), "contradicts"),
    (lambda: small(learned_lr=LearnedStepSize(0.1), meta={"syn_lr": 0.2}), "contradicts"),
    (lambda: small(learned_lr=0.1), "LearnedStepSize"),
    (lambda: small(privacy={"epsilon": 1.0}), "PrivacyRecord"),
])
def test_contradictory_or_mistyped_fields_are_refused(make, message) -> None:
    with pytest.raises(InvalidSyntheticSetError, match=message):
        make()


def test_a_file_with_contradictory_fields_is_refused(tmp_path) -> None:
    path = small(formation_factor=2).save(tmp_path / "s.npz")
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = json.loads(str(arrays["meta_json"]))
    header["meta"]["formation_factor"] = 4  # the old key says 4, the typed field 2
    arrays["meta_json"] = np.array(json.dumps(header))
    write_npz_atomic(path, arrays)
    with pytest.raises(InvalidSyntheticSetError, match="contradicts"):
        SyntheticSet.load(path)
    header["meta"].pop("formation_factor")
    header["fields"]["privacy"] = {"mechanism": "x"}
    arrays["meta_json"] = np.array(json.dumps(header))
    write_npz_atomic(path, arrays)
    with pytest.raises(InvalidSyntheticSetError, match="privacy"):
        SyntheticSet.load(path)


@pytest.mark.parametrize("change, message", [
    ({"epsilon": -1.0}, "epsilon"), ({"delta": 1.0}, "delta"), ({"sampling_rate": 0.0}, "sampling_rate"),
    ({"clip": 0.0}, "clip"), ({"steps": 2.5}, "steps"), ({"mechanism": ""}, "mechanism"),
    ({"noise_multiplier": float("nan")}, "noise_multiplier"),
])
def test_privacy_record_checks_types_and_ranges(change, message) -> None:
    data = {**RECORD.to_dict(), **change}
    with pytest.raises(InvalidSyntheticSetError, match=message):
        PrivacyRecord.from_dict(data)
    assert PrivacyRecord.from_dict(RECORD.to_dict()) == RECORD
