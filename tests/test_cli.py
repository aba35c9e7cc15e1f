"""The ``condense`` command: distill -> evaluate --json -> show, errors, atomic output."""

from __future__ import annotations

import json

import pytest

from condense import SyntheticSet
from condense.cli import main


def test_distill_evaluate_show(tmp_path, capsys):
    out = tmp_path / "digits_random.npz"
    assert main(["distill", "--data", "digits", "--method", "random", "--ipc", "2", "--out", str(out), "--quiet", "--json"]) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert first["images"] == 20 and SyntheticSet.load(out).class_counts() == [2] * 10
    assert main(["evaluate", str(out), "--data", "digits", "--models", "2", "--epochs", "5", "--quiet", "--json"]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["models"] == 2 and len(last["accuracies"]) == 2
    assert 0.0 <= last["accuracy_mean"] <= 1.0 and last["accuracy_std"] >= 0.0
    png = tmp_path / "grid.png"
    assert main(["show", str(out), "--png", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_methods_lists_the_registry(capsys):
    assert main(["methods", "--json"]) == 0
    listed = {m["name"]: m["family"] for m in json.loads(capsys.readouterr().out.strip().splitlines()[-1])["methods"]}
    assert listed["dm"] == "distribution matching"
    assert {"random", "herding", "kcenter"} <= {n for n, f in listed.items() if f == "coreset"}


def test_bad_input_exits_2_and_keeps_existing_output(tmp_path, capsys):
    out = tmp_path / "keep.npz"
    out.write_bytes(b"previous result")
    code = main(["distill", "--data", "digits", "--method", "random", "--ipc", "500", "--out", str(out), "--quiet"])
    assert code == 2
    assert "ipc=500" in capsys.readouterr().err
    assert out.read_bytes() == b"previous result"
    assert main(["evaluate", str(tmp_path / "nope.npz"), "--data", "digits"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_unknown_method_is_a_clear_error(tmp_path, capsys):
    assert main(["distill", "--data", "digits", "--method", "nope", "--out", str(tmp_path / "x.npz")]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err


def test_param_values_reach_the_method(tmp_path):
    out = tmp_path / "dm.npz"
    args = ["distill", "--data", "digits", "--method", "dm", "--ipc", "1", "--steps", "2", "--param", "batch_real=8",
            "--param", 'model_kwargs={"width": 16}', "--out", str(out), "--quiet"]
    assert main(args) == 0
    hyper = SyntheticSet.load(out).meta["hyperparameters"]
    assert hyper["batch_real"] == 8 and hyper["model_kwargs"] == {"width": 16} and hyper["steps"] == 2


def test_missing_required_argument_is_reported():
    with pytest.raises(SystemExit) as exc:
        main(["distill", "--method", "dm"])
    assert exc.value.code == 2


def test_distill_continues_from_its_checkpoint(tmp_path, capsys):
    ckpt, out = tmp_path / "run.ckpt.npz", tmp_path / "dm.npz"
    base = ["distill", "--data", "digits", "--method", "dm", "--ipc", "1", "--param", "batch_real=8",
            "--param", 'model_kwargs={"width": 8, "depth": 2}', "--out", str(out), "--checkpoint", str(ckpt),
            "--quiet", "--json"]
    assert main([*base, "--steps", "2"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["resumed_from_step"] is None
    assert main([*base, "--steps", "4"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["resumed_from_step"] == 2
    assert SyntheticSet.load(out).meta["steps_run"] == 4
    # another run's settings: refused with the reason, the checkpoint kept
    assert main([*base, "--steps", "6", "--param", "lr_img=0.3"]) == 2
    assert "lr_img" in capsys.readouterr().err
