"""The ClientApp: condense the local partition (``train.distill``) or train the global model (``train``).

Message contents the client expects (all written by :mod:`.server`):

* ``config`` (ConfigRecord): a :class:`~.round_config.RoundConfig`: round,
  classes, method, ipc, ``method_kwargs``, seed, encoding, the global model's
  architecture, the server's normalization, local training settings and, for
  ``train`` messages, ``distill`` (also attach a synthetic set, hybrid round 1);
* ``arrays`` (ArrayRecord, optional for ``train.distill``): the global model.

The client's data, device and threads are its own
(:class:`~.client_settings.ClientSettings`, from its node and run config).

Replies: ``syn`` + ``syn-config`` (the set, see :mod:`.payload`), ``arrays``
(trained weights, ``train`` only) and ``metrics`` (``num-examples``,
``classes-condensed``, ``classes-skipped``, ``syn-bytes``, ``seconds``, ``empty``).

A client with no data, or no class with as many samples as the method needs
(``ipc``, or more for a method that packs several real images into one
stored image), answers with ``empty=1`` and no set: the server counts it and
goes on. A client with one class sends a one-class set (unless the method
needs more classes). Classes with too few local samples are left out of the
set (``classes-skipped``); they are too small to condense without sending
(nearly) the raw images.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from condense.data.tensor_data import TensorData
from condense.federated.client_settings import ClientSettings
from condense.federated.global_sampler import around_global_model
from condense.federated.local_training import build_global_model, train_local
from condense.federated.partition import client_partition
from condense.federated.payload import ARRAYS_KEY, CONFIG_KEY, encode_synthetic_set
from condense.federated.round_config import RoundConfig


def read_round(msg: Message) -> RoundConfig:
    """The round's instructions from the message (see :mod:`.round_config`)."""
    return RoundConfig.from_record(msg.content.config_records["config"])


def load_client_data(local: ClientSettings) -> TensorData | None:
    """This node's training data: its own ``data_path`` if set, else its partition of ``data``."""
    if local.data_path:
        from condense.data import load_dataset

        return load_dataset(str(local.data_path))[0]
    return client_partition(local.data, local.root, local.partition_id, local.num_partitions, local.partitioner,
                            local.alpha, local.partition_seed, local.min_partition_size)


def condense_local(
    data: TensorData | None, round_cfg: RoundConfig, seed: int, device: str = "cpu",
    global_state: dict[str, torch.Tensor] | None = None,
) -> tuple[RecordDict, dict[str, float]]:
    """Condense ``data`` and return the payload records and metrics (no set when nothing qualifies).

    Classes with fewer samples than the method needs
    (:meth:`~condense.methods.base.Condenser.min_samples_per_class`) are left
    out; a client left with fewer classes than the method needs answers empty.
    """
    from condense.api import make_condenser

    start = time.perf_counter()
    num_classes = round_cfg.num_classes
    metrics: dict[str, float] = {"num-examples": 0, "classes-condensed": 0, "classes-skipped": 0, "syn-bytes": 0, "empty": 1}
    if data is None:
        metrics["seconds"] = time.perf_counter() - start
        return RecordDict(), metrics
    params: dict[str, Any] = {**round_cfg.method_kwargs, "ipc": round_cfg.ipc, "seed": seed, "device": device,
                              "show_progress": False}
    condenser = make_condenser(round_cfg.method, **params)
    need = condenser.min_samples_per_class()
    counts = torch.bincount(data.y, minlength=num_classes)
    keep = [c for c in range(num_classes) if counts[c] >= need]
    metrics["num-examples"] = int(counts.sum())
    metrics["classes-skipped"] = int(((counts > 0) & (counts < need)).sum())
    if len(keep) < max(1, condenser.min_classes):
        metrics["classes-skipped"] = int((counts > 0).sum())
        metrics["seconds"] = time.perf_counter() - start
        return RecordDict(), metrics
    mask = torch.isin(data.y, torch.tensor(keep))
    local = TensorData(data.x[mask], data.y[mask], num_classes, None, data.name)
    if global_state is not None:
        shape = tuple(local.image_shape)
        condenser = around_global_model(
            condenser, lambda: build_global_model(round_cfg.model, round_cfg.model_kwargs, shape, num_classes),
            global_state, round_cfg.server_normalization(), round_cfg.feddm_radius,
        )
    # One normalization for every client (the server's), recorded in the set; FedDM needs it too.
    syn = condenser.condense(local, num_classes, normalization=round_cfg.server_normalization())
    arrays, syn_config = encode_synthetic_set(syn, round_cfg.encoding)
    metrics.update({"classes-condensed": len(keep), "syn-bytes": arrays.count_bytes(), "empty": 0})
    metrics["seconds"] = time.perf_counter() - start
    return RecordDict({ARRAYS_KEY: arrays, CONFIG_KEY: syn_config}), metrics


def _seed(round_cfg: RoundConfig, local: ClientSettings) -> int:
    return round_cfg.seed * 100_003 + 1_000 * local.partition_id + round_cfg.server_round


def handle_distill(msg: Message, context: Context, defaults: ClientSettings | None = None) -> Message:
    """``train.distill``: reply with this node's synthetic set (FedDM-style when weights come along)."""
    round_cfg = read_round(msg)
    local = (defaults or ClientSettings()).resolve(dict(context.run_config), dict(context.node_config))
    torch.set_num_threads(local.threads)
    global_state = None
    if "arrays" in msg.content.array_records and round_cfg.feddm_radius >= 0:
        global_state = msg.content.array_records["arrays"].to_torch_state_dict()
    data = load_client_data(local)
    content, metrics = condense_local(data, round_cfg, _seed(round_cfg, local), local.device, global_state)
    content["metrics"] = MetricRecord(metrics)
    return Message(content=content, reply_to=msg)


def handle_train(msg: Message, context: Context, defaults: ClientSettings | None = None) -> Message:
    """``train``: FedAvg local training of the received model (plus a set when ``distill`` is set)."""
    round_cfg = read_round(msg)
    local = (defaults or ClientSettings()).resolve(dict(context.run_config), dict(context.node_config))
    torch.set_num_threads(local.threads)
    data = load_client_data(local)
    received = msg.content.array_records["arrays"]
    content = RecordDict()
    metrics: dict[str, float] = {}
    seed = _seed(round_cfg, local)
    if round_cfg.distill:
        content, metrics = condense_local(data, round_cfg, seed, local.device)
    start = time.perf_counter()
    if data is None:
        content["arrays"] = received
        metrics["num-examples"] = 0
    else:
        model = build_global_model(round_cfg.model, round_cfg.model_kwargs, tuple(data.image_shape), round_cfg.num_classes)
        model.load_state_dict(received.to_torch_state_dict())
        train_local(model, data, round_cfg, seed, local.device)
        content["arrays"] = ArrayRecord(model.state_dict())
        metrics["num-examples"] = len(data)
    metrics["train-seconds"] = time.perf_counter() - start
    content["metrics"] = MetricRecord(metrics)
    return Message(content=content, reply_to=msg)


FAULTS = ("raise", "nan", "wrong-shape")


def _faulty(kind: str, msg: Message, context: Context, defaults: ClientSettings | None = None) -> Message:
    """A deliberately bad reply (for testing that the server survives it)."""
    if kind == "raise":
        raise RuntimeError(f"injected failure on partition {context.node_config.get('partition-id')}")
    handler = handle_distill if msg.metadata.message_type.endswith("distill") else handle_train
    reply = handler(msg, context, defaults)
    record = reply.content.array_records.get(ARRAYS_KEY)
    if record is not None:
        images = record["images"].numpy().astype(np.float32)
        if kind == "nan":
            images[...] = np.nan
            reply.content.config_records[CONFIG_KEY]["encoding"] = "float32"
        else:
            images = images[:, :, :-1]
        record["images"] = Array(np.ascontiguousarray(images))
    return reply


def build_client_app(faults: dict[int, str] | None = None, defaults: ClientSettings | None = None) -> ClientApp:
    """A ClientApp answering ``train`` and ``train.distill`` with the handlers above.

    ``defaults``: the client's own settings where its node and run config say
    nothing (see :mod:`.client_settings`). ``faults`` maps partition ids to a
    misbehaviour (``raise``, ``nan``, ``wrong-shape``), for testing that a run
    survives bad clients.
    """
    faults = dict(faults or {})
    bad = {k: v for k, v in faults.items() if v not in FAULTS}
    if bad:
        raise ValueError(f"unknown fault(s) {bad}: use {', '.join(FAULTS)}")
    app = ClientApp()

    def dispatch(handler, msg: Message, context: Context) -> Message:  # noqa: ANN001
        kind = faults.get(int(context.node_config.get("partition-id", -1)))
        return _faulty(kind, msg, context, defaults) if kind else handler(msg, context, defaults)

    @app.train()
    def _train(msg: Message, context: Context) -> Message:
        return dispatch(handle_train, msg, context)

    @app.train("distill")
    def _distill(msg: Message, context: Context) -> Message:
        return dispatch(handle_distill, msg, context)

    return app


app = build_client_app()
