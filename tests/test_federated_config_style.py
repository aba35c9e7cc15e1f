"""One configuration style: the server sends a round only what it needs; a client takes
its data, device and threads from its own node and run config; method hyperparameters
travel as one ``method_kwargs`` mapping."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from flwr.app import RecordDict

import condense.federated.client as client
from condense.federated.client_settings import ClientSettings, InvalidClientSettingsError
from condense.federated.config import FLConfig
from condense.federated.round_config import InvalidRoundConfigError, RoundConfig

# Everything of an FLConfig that is the server's business, not a round's.
SERVER_ONLY = {"data", "root", "report-path", "timeout", "max-payload-bytes", "partitioner", "alpha", "num-clients",
               "threads", "device", "server-epochs", "server-lr", "server-batch", "min-clients", "hybrid-epochs", "rounds",
               "strategy", "min-partition-size", "fl-config-json"}


def test_the_round_record_holds_only_what_a_round_needs() -> None:
    cfg = FLConfig(data="/secret/path.npz", root="/secret", report_path="/tmp/r.json", method="dm",
                   method_kwargs={"steps": 3, "model_kwargs": {"width": 8}}, ipc=2, seed=4,
                   normalization={"mean": [0.5], "std": [0.2]})
    record = cfg.round_config(3, 10).to_record()
    assert not SERVER_ONLY & set(record)
    assert "/secret" not in str(dict(record)) and "/tmp/r.json" not in str(dict(record))
    back = RoundConfig.from_record(record)
    assert back == cfg.round_config(3, 10)
    assert back.method_kwargs == {"steps": 3, "model_kwargs": {"width": 8}} and back.server_round == 3


@pytest.mark.parametrize("key,value", [("ipc", "2"), ("ipc", True), ("method-kwargs", "[1, 2]"), ("local-lr", float("nan"))])
def test_a_malformed_round_record_is_refused(key: str, value: object) -> None:
    record = FLConfig().round_config(1, 10).to_record()
    record[key] = value
    with pytest.raises(InvalidRoundConfigError):
        RoundConfig.from_record(record)
    del record[key]
    with pytest.raises(InvalidRoundConfigError, match="misses"):
        RoundConfig.from_record(record)


def test_client_settings_come_from_defaults_then_run_config_then_node_config() -> None:
    defaults = FLConfig(data="digits", alpha=0.3, num_clients=4, seed=2).client_settings(device="cpu", threads=1)
    assert (defaults.alpha, defaults.num_partitions, defaults.partition_seed) == (0.3, 4, 2)
    run = {"alpha": 0.7, "client-device": "cuda:1", "client-threads": 3, "data": "mnist", "report-path": "x"}
    node = {"partition-id": 2, "num-partitions": 4, "device": "cuda:0", "data-path": "/mine.npz"}
    got = defaults.resolve(run, node)
    assert (got.alpha, got.threads, got.data, got.device, got.data_path, got.partition_id) == (0.7, 3, "mnist", "cuda:0", "/mine.npz", 2)
    assert defaults.resolve(run, {}).device == "cuda:1"
    with pytest.raises(InvalidClientSettingsError):
        defaults.resolve({}, {"partition-id": 5, "num-partitions": 4})


def test_the_client_condenses_its_own_data_on_its_own_device(monkeypatch) -> None:
    seen = {}

    def fake_condense_local(data, round_cfg, seed, device="cpu", global_state=None):  # noqa: ANN001
        seen.update(data=data, round_cfg=round_cfg, device=device, threads=torch.get_num_threads())
        return RecordDict(), {"empty": 1}

    x = torch.rand(30, 1, 8, 8)
    y = torch.arange(30) % 3
    own = SimpleNamespace(x=x, y=y)
    monkeypatch.setattr(client, "condense_local", fake_condense_local)
    monkeypatch.setattr(client, "Message", lambda content, reply_to: content)
    monkeypatch.setattr(client, "load_client_data", lambda local: own if local.data_path == "/node/own.npz" else None)
    cfg = FLConfig(data="/server/only.npz", method="random", ipc=2)
    msg = SimpleNamespace(content=RecordDict({"config": cfg.round_config(1, 10).to_record()}))
    context = SimpleNamespace(node_config={"data-path": "/node/own.npz", "device": "meta", "threads": 1, "partition-id": 0},
                              run_config={})
    before = torch.get_num_threads()
    try:
        client.handle_distill(msg, context)
    finally:
        torch.set_num_threads(before)
    assert seen["data"] is own and seen["device"] == "meta" and seen["threads"] == 1
    assert seen["round_cfg"].method == "random" and seen["round_cfg"].ipc == 2


def test_simulate_passes_client_resources_and_devices(monkeypatch) -> None:
    import flwr.simulation

    import condense.federated.simulation as simulation

    seen = {}

    def fake_run_simulation(server_app, client_app, num_supernodes, backend_config, verbose_logging):  # noqa: ANN001
        seen.update(backend=backend_config, n=num_supernodes)

    monkeypatch.setattr(flwr.simulation, "run_simulation", fake_run_simulation)
    built = {}
    real_build = simulation.build_client_app
    monkeypatch.setattr(simulation, "build_client_app", lambda defaults=None: built.setdefault("d", defaults) and real_build(defaults=defaults))
    servers = {}
    monkeypatch.setattr(simulation, "build_server_app", lambda configs, sink: servers.setdefault("c", configs))
    cfg = FLConfig(num_clients=3, device="cpu", min_clients=1)
    with pytest.raises(RuntimeError, match="without a report"):
        simulation.simulate(cfg, max_parallel=2, num_gpus_per_client=0.5, client_device="cuda:0", server_device="cuda:1")
    assert seen["backend"]["client_resources"] == {"num_cpus": 1, "num_gpus": 0.5}
    assert seen["backend"]["init_args"]["num_gpus"] == 1.0 and seen["n"] == 3
    assert built["d"].device == "cuda:0" and servers["c"][0].device == "cuda:1"


def test_method_kwargs_must_fit_the_method() -> None:
    from condense.federated.config import InvalidFLConfigError

    FLConfig(method="herding", method_kwargs={}).validate()
    with pytest.raises(InvalidFLConfigError, match="steps"):
        FLConfig(method="herding", method_kwargs={"steps": 5}).validate()
