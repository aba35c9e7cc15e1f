"""Flower's Deployment Engine on 127.0.0.1 with TLS and SuperNode authentication.

A SuperLink and two SuperNodes run ``flwr run`` of our app to the end; a
SuperNode whose key was not registered is refused.
"""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import ssl
import sys
import time
from pathlib import Path

import pytest

from condense.federated.local_certificates import write_node_key_pair
from condense.federated.local_deployment import LocalDeployment

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (Path(sys.executable).parent / "flower-superlink").exists() and not shutil.which("flower-superlink"),
                       reason="flower-superlink is not installed"),
]
APP = Path(__file__).resolve().parent.parent / "examples" / "flower_app"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _http_status(port: int, ca_file: Path | None = None) -> int:
    """An HTTP status from 127.0.0.1:port: over TLS with the certificate checked
    against ``ca_file`` when given, else over plain text (what ``insecure = true`` speaks)."""
    if ca_file is None:
        conn: http.client.HTTPConnection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    else:
        ctx = ssl.create_default_context(cafile=str(ca_file))
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    try:
        conn.request("GET", "/")
        return conn.getresponse().status
    finally:
        conn.close()


def test_oneshot_on_secure_superlink_and_two_supernodes(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    dep = LocalDeployment(2, tmp_path, secure=True)
    with dep:
        pids = [p.pid for p in dep.procs]
        assert len(pids) == 3
        config = (tmp_path / "flwr_home" / "config.toml").read_text()
        assert "insecure" not in config and f'root-certificates = "{(tmp_path / "certs" / "ca.crt").resolve()}"' in config
        # TLS is on: a TLS client that trusts only our CA gets an HTTP answer, plain text gets none.
        assert 100 <= _http_status(dep.port, tmp_path / "certs" / "ca.crt") < 600
        with pytest.raises((http.client.HTTPException, ConnectionError, socket.timeout)):
            _http_status(dep.port)
        result = dep.flwr_run(
            APP,
            run_config=(f"report-path='{report_path}' server-epochs=60 width=16 num-clients=2 min-clients=2 "
                        """method-kwargs='{"steps": 5, "batch_real": 32, "model_kwargs": {"width": 16}}'"""),
            timeout=240,
        )
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    # every process the test started is gone (or a reaped zombie)
    assert not [pid for pid in pids if _alive(pid)]
    assert "Uvicorn running on https://" in (tmp_path / "superlink.log").read_text()
    report = json.loads(report_path.read_text())
    assert report["strategy"] == "oneshot" and report["rounds"] == 1
    assert len(report["client_metrics"]) == 2 and not report["incidents"]
    assert report["accuracy"] > report["history"][0]["accuracy"] + 0.2
    assert report["bytes_up"] > 0 and report["bytes_down"] > 0


def _wait_for_text(path: Path, text: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return True
        time.sleep(0.3)
    return False


def test_unregistered_supernode_is_refused(tmp_path: Path) -> None:
    dep = LocalDeployment(1, tmp_path, secure=True)
    with dep:
        # The registered node signs in (the SuperNode logs its ID once the SuperLink activated it).
        assert _wait_for_text(tmp_path / "supernode0.log", "SuperNode ID:", 60), (tmp_path / "supernode0.log").read_text()
        write_node_key_pair(tmp_path / "stranger", tmp_path / "stranger.pub")
        stranger = dep.start_supernode("partition-id=0 num-partitions=1", "stranger.log", private_key=tmp_path / "stranger")
        # flwr 1.41 logs Flower exit code 305 (SUPERNODE_CONNECTION_ERROR) and exits the process with status 1.
        assert stranger.wait(timeout=60) == 1
        pids = [p.pid for p in dep.procs]
        assert dep.procs[1].poll() is None, "the registered SuperNode keeps running"
    log = (tmp_path / "stranger.log").read_text()
    assert "Exit Code: 305" in log and "Failed to activate SuperNode" in log, log
    assert "No SuperNode found with the given public key" in (tmp_path / "superlink.log").read_text()
    assert len(pids) == 3 and not [pid for pid in pids if _alive(pid)]


def test_too_few_supernodes_fail_fast_with_a_clear_message_and_nothing_is_left(tmp_path: Path) -> None:
    """Issue 20, problem 6: more clients than SuperNodes used to wait silently for the whole timeout."""
    from condense.federated.local_deployment import descendant_pids

    dep = LocalDeployment(1, tmp_path)
    with dep:
        start = time.monotonic()
        result = dep.flwr_run(APP, run_config="""num-clients=2 min-clients=2 timeout=8.0 method-kwargs='{"steps": 2}'""", timeout=180)
        elapsed = time.monotonic() - start
        family = [p.pid for p in dep.procs] + [pid for p in dep.procs for pid in descendant_pids(p.pid)]
    text = result.stdout + result.stderr
    assert "only 1 of the 2 expected SuperNodes joined within 8 s" in text, text[-3000:]
    assert elapsed < 120
    assert not [pid for pid in family if _alive(pid)]
