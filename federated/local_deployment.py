"""Flower's Deployment Engine on one machine: a SuperLink and N SuperNodes on 127.0.0.1.

For trying the apps as they run across machines, and for the test of that
path. Every process started is stopped again (by its PID) when the context
exits, whatever happened inside::

    with LocalDeployment(num_nodes=2, workdir=tmp) as dep:
        dep.flwr_run("examples/flower_app", run_config="num-clients=2")

Plain (``--insecure``) by default. With ``secure=True`` the same processes run
with TLS and SuperNode authentication, as across machines (see the README):
a CA, a server certificate for 127.0.0.1 and one key pair per SuperNode are
made under ``workdir/certs`` (:mod:`condense.federated.local_certificates`),
the SuperLink gets ``--ssl-*`` files and ``--enable-supernode-auth``, every
SuperNode's public key is registered with ``flwr supernode register`` before
the SuperNode starts with ``--root-certificates`` and
``--auth-supernode-private-key``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from condense.federated.local_certificates import LocalCertificates, make_local_certificates


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bin(name: str) -> str:
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else (shutil.which(name) or name)


class LocalDeployment:
    """Starts ``flower-superlink`` and ``num_nodes`` ``flower-supernode`` processes.

    Node ``i`` gets ``--node-config "partition-id=i num-partitions=N"`` (or
    ``node_configs[i]``) and its own ``--port``. ``FLWR_HOME`` points into
    ``workdir`` with a ``config.toml`` naming the connection ``local-deployment``.
    ``secure=True`` turns on TLS and SuperNode authentication (``self.certs``).
    """

    def __init__(self, num_nodes: int, workdir: str | os.PathLike, node_configs: list[str] | None = None,
                 secure: bool = False) -> None:
        self.num_nodes = num_nodes
        # Absolute: the processes run with cwd=workdir and get paths inside it.
        self.workdir = Path(workdir).resolve()
        self.node_configs = node_configs or [f"partition-id={i} num-partitions={num_nodes}" for i in range(num_nodes)]
        self.secure = secure
        self.certs: LocalCertificates | None = None
        self.procs: list[subprocess.Popen] = []
        self.port = 0
        self.env = dict(os.environ)

    def __enter__(self) -> "LocalDeployment":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen:
        log = open(self.workdir / log_name, "wb")
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.workdir, start_new_session=True)
        log.close()
        self.procs.append(proc)
        return proc

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        home = self.workdir / "flwr_home"
        home.mkdir(exist_ok=True)
        self.port = free_port()
        if self.secure:
            self.certs = make_local_certificates(self.workdir / "certs", len(self.node_configs))
            transport = f'root-certificates = "{self.certs.ca_cert.resolve()}"\n'
            link_flags = ["--ssl-ca-certfile", str(self.certs.ca_cert), "--ssl-certfile", str(self.certs.server_cert),
                          "--ssl-keyfile", str(self.certs.server_key), "--enable-supernode-auth"]
        else:
            transport = "insecure = true\n"
            link_flags = ["--insecure"]
        (home / "config.toml").write_text(
            '[superlink]\ndefault = "local-deployment"\n\n'
            f'[superlink.local-deployment]\naddress = "127.0.0.1:{self.port}"\n{transport}'
        )
        bindir = str(Path(sys.executable).parent)
        # The SuperLink and SuperNodes start helper executables (flower-superexec) from PATH.
        self.env.update(FLWR_HOME=str(home), CONDENSE_QUIET="1", OMP_NUM_THREADS="1", PATH=bindir + os.pathsep + self.env.get("PATH", ""))
        self._spawn(
            [_bin("flower-superlink"), *link_flags, "--disable-runtime-dependency-installation",
             "--host", "127.0.0.1", "--port", str(self.port), "--database", str(self.workdir / "state.db")],
            "superlink.log",
        )
        self._wait_port(self.port, 60)
        for i, node_config in enumerate(self.node_configs):
            key = None
            if self.certs is not None:
                # With --enable-supernode-auth the SuperLink refuses any node whose key it does not know.
                self.register_supernode(self.certs.node_public_keys[i])
                key = self.certs.node_keys[i]
            self.start_supernode(node_config, f"supernode{i}.log", private_key=key)

    def register_supernode(self, public_key: str | os.PathLike, timeout: float = 60) -> None:
        """``flwr supernode register PUBLIC_KEY local-deployment``; raises if it fails."""
        result = subprocess.run([_bin("flwr"), "supernode", "register", str(Path(public_key).resolve()), "local-deployment"],
                                env=self.env, cwd=self.workdir, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"flwr supernode register {public_key} failed ({result.returncode}): "
                               f"{result.stdout[-1000:]}{result.stderr[-1000:]}")

    def start_supernode(self, node_config: str, log_name: str, private_key: str | os.PathLike | None = None) -> subprocess.Popen:
        """One more ``flower-supernode`` against this SuperLink (stopped with the rest).

        In a secure deployment it trusts ``certs/ca.crt`` and signs in with ``private_key``.
        """
        if self.secure:
            if self.certs is None:
                raise RuntimeError("start() the secure deployment first: it makes the certificates")
            flags = ["--root-certificates", str(self.certs.ca_cert)]
            if private_key is not None:
                flags += ["--auth-supernode-private-key", str(Path(private_key).resolve())]
        else:
            flags = ["--insecure"]
        return self._spawn(
            [_bin("flower-supernode"), *flags, "--superlink", f"127.0.0.1:{self.port}",
             "--node-config", node_config, "--port", str(free_port())],
            log_name,
        )

    def _wait_port(self, port: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.procs[0].poll() is not None:
                raise RuntimeError(f"flower-superlink exited with code {self.procs[0].returncode}; see {self.workdir}/superlink.log")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.3)
        raise TimeoutError(f"the SuperLink did not listen on port {port} within {timeout:.0f} s")

    def flwr_run(self, app_dir: str | os.PathLike, run_config: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        """``flwr run APP local-deployment --stream`` (blocks until the run ends or ``timeout``)."""
        args = [_bin("flwr"), "run", str(Path(app_dir).resolve()), "local-deployment", "--stream"]
        if run_config:
            args += ["--run-config", run_config]
        return subprocess.run(args, env=self.env, cwd=self.workdir, capture_output=True, text=True, timeout=timeout)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM every started process group (its app children with it), then SIGKILL stragglers.

        Descendants that left the group (Ray's agents start their own sessions) are found
        before anything is stopped and are stopped by PID too, so nothing is left running.
        """
        family = [pid for proc in self.procs if proc.poll() is None for pid in descendant_pids(proc.pid)]
        for proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + grace
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=5)
        _stop_pids(family, max(1.0, deadline - time.monotonic()))
        self.procs.clear()


def descendant_pids(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children, ...), read from ``/proc`` (Linux; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                parent = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _stop_pids(pids: list[int], grace: float) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds, each of ``pids`` still alive."""
    alive = [pid for pid in pids if _signal(pid, signal.SIGTERM)]
    deadline = time.monotonic() + grace
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [pid for pid in alive if _running(pid)]
    for pid in alive:
        _signal(pid, signal.SIGKILL)


def _signal(pid: int, sig: int) -> bool:
    try:
        os.kill(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
