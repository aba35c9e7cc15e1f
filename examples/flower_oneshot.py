"""One-shot federated learning with Flower: 4 clients condense their digits into
synthetic sets, the server trains one model on the union. About a minute on 2 CPU cores.

    python examples/flower_oneshot.py
"""

from condense.federated import FLConfig, simulate

config = FLConfig(
    data="digits",  # bundled; any name or path load_dataset takes
    num_clients=4,
    alpha=0.5,  # Dirichlet label skew across clients
    strategy="oneshot",
    method="dm",  # any registry method: "herding", "kcenter", ...
    ipc=5,
    method_kwargs={"steps": 50, "batch_real": 64, "model_kwargs": {"width": 32}},  # the method's (see `condense methods`)
    encoding="float16",
    server_epochs=200,
    server_batch=32,
)
report = simulate(config)  # Flower's Simulation Engine (Ray)
print(report.summary())
for rec in report.history:
    print(f"round {rec.round}: {100 * rec.accuracy:.1f}% after {rec.bytes_up + rec.bytes_down:,} bytes")
