"""Real Redis 7.0 / Valkey 8 servers with the module, on free loopback ports,
each in its own directory under target/, stopped by PID."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FLAVORS = ("redis", "valkey")
_seq = itertools.count()


def module_path() -> Path:
    p = Path(os.environ.get("CACHEKIT_MODULE", ROOT / "target/release/libcachekit.so"))
    if not p.exists():
        raise RuntimeError(
            f"{p} is missing: build it with `cargo build --release` (make test does)"
        )
    return p


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cli_binary(flavor: str) -> str:
    own = "valkey-cli" if flavor == "valkey" else "redis-cli"
    return own if shutil.which(own) else "redis-cli"


class Server:
    def __init__(
        self,
        flavor: str,
        module_args: list[str] | None = None,
        server_args: list[str] | None = None,
    ) -> None:
        self.flavor = flavor
        self.module_args = module_args or []
        self.server_args = server_args or []
        self.dir = ROOT / "target/py-servers" / f"{os.getpid()}-{flavor}-{next(_seq)}"
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = "valkey-server" if self.flavor == "valkey" else "redis-server"
        args = [
            binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.dir),
            "--logfile", "server.log",
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--loadmodule", str(module_path()), *self.module_args,
            *self.server_args,
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{binary} exited: {self.log()}")
            if self.ping():
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{binary} did not answer on {self.port}: {self.log()}")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def log(self) -> str:
        try:
            return (self.dir / "server.log").read_text()[-2000:]
        except OSError:
            return ""

    def cli(self, *args: str) -> str:
        out = subprocess.run(
            [cli_binary(self.flavor), "-p", str(self.port), *args],
            capture_output=True,
            timeout=10,
            check=True,
        )
        return out.stdout.decode().strip()

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()


class Cluster:
    """Three masters with `key-style tagged`, made by `--cluster create`."""

    def __init__(self, flavor: str) -> None:
        self.nodes: list[Server] = []
        try:
            for _ in range(3):
                bus = free_port()
                self.nodes.append(
                    Server(
                        flavor,
                        ["key-style", "tagged"],
                        [
                            "--cluster-enabled", "yes",
                            "--cluster-config-file", "nodes.conf",
                            "--cluster-node-timeout", "5000",
                            "--cluster-port", str(bus),
                        ],
                    )
                )  # fmt: skip
            addrs = [f"127.0.0.1:{n.port}" for n in self.nodes]
            create = [cli_binary(flavor), "--cluster", "create", *addrs]
            out = subprocess.run(
                [*create, "--cluster-replicas", "0", "--cluster-yes"],
                capture_output=True,
                timeout=60,
            )
            if b"All 16384 slots covered" not in out.stdout:
                raise RuntimeError(f"--cluster create failed: {out.stdout!r} {out.stderr!r}")
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if all("cluster_state:ok" in n.cli("CLUSTER", "INFO") for n in self.nodes):
                    return
                time.sleep(0.1)
            raise RuntimeError("cluster did not reach cluster_state:ok")
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()
