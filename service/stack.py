"""The embedded stack behind `neuronlens up` and `neuronlens demo`: Redis, the API and workers, supervised.

Every process runs in its own session, so a terminal's Ctrl-C reaches only the supervisor, which stops
them in order: API and workers first (SIGTERM: warm shutdown; SIGKILL after the grace period), Redis
last, because workers still write job state while they shut down. On Linux each child also gets SIGTERM
from the kernel if the supervisor itself dies, so no stray redis-server or worker outlives it.

No torch, no `workers` import: workers are started as `python -m workers.worker`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO
from urllib.parse import urlsplit, urlunsplit

import httpx

from service.embedded_redis import EmbeddedRedis, die_with_parent

DEFAULT_GRACE_S = 10.0
"""Seconds a child gets to exit after SIGTERM before it is killed."""

READY_TIMEOUT_S = 120.0
"""Seconds to wait for the API's /readyz to answer 200 at start."""


class StackError(RuntimeError):
    """The stack could not start, or one of its processes died; the message says which and why."""


@dataclass
class Child:
    """One supervised process."""

    name: str
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    def describe_exit(self) -> str:
        """``exited with code 3`` or ``was killed by SIGKILL``."""
        code = self.process.returncode
        if code is not None and code < 0:
            try:
                return f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"was killed by signal {-code}"
        return f"exited with code {code}"


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, for printing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def external_redis_url(env: Mapping[str, str]) -> str | None:
    """The Redis the user configured (NEURONLENS_REDIS_URL, else REDIS_URL), or None for an embedded one."""
    return env.get("NEURONLENS_REDIS_URL") or env.get("REDIS_URL") or None


def check_port_free(host: str, port: int) -> None:
    """Fail early and clearly when the API port is taken, rather than when uvicorn exits."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise StackError(
                f"cannot listen on {host}:{port} ({exc.strerror}): choose another --port"
            ) from exc


@dataclass
class Stack:
    """Redis (embedded unless ``redis_url`` is given), one API process and ``n_workers`` worker processes.

    ``output`` receives the children's stdout and stderr (None: inherit the supervisor's).
    ``stopping`` lets a signal handler interrupt :meth:`start` while it waits for readiness.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    n_workers: int = 1
    redis_url: str | None = None
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    output: IO[bytes] | None = None
    grace_s: float = DEFAULT_GRACE_S
    stopping: threading.Event = field(default_factory=threading.Event)
    redis: EmbeddedRedis | None = field(default=None, init=False)
    children: list[Child] = field(default_factory=list, init=False)

    @property
    def api_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        host = "[::1]" if host == "::" else host
        return f"http://{host}:{self.port}"

    @property
    def effective_redis_url(self) -> str:
        if self.redis_url:
            return self.redis_url
        if self.redis is None:
            raise StackError("the embedded Redis is not running")
        return self.redis.url

    def start(self, ready_timeout_s: float = READY_TIMEOUT_S) -> None:
        """Start Redis (if embedded), the API and the workers; return once /readyz answers 200, or
        as soon as ``stopping`` is set (the caller then calls :meth:`stop`).

        On any failure everything started so far is stopped and :class:`StackError` is raised.
        """
        check_port_free(self.host, self.port)
        try:
            if not self.redis_url:
                self.redis = EmbeddedRedis(own_session=True).start()
            child_env = self._child_env()
            self._spawn("api", self._api_command(), child_env)
            for index in range(1, self.n_workers + 1):
                self._spawn(f"worker-{index}", self._worker_command(index), child_env)
            self._wait_ready(ready_timeout_s)
        except BaseException:
            self.stop()
            raise

    def dead_child(self) -> Child | None:
        """A child that has exited, if any (the stack is unhealthy then)."""
        for child in self.children:
            if child.process.poll() is not None:
                return child
        if (
            self.redis is not None
            and self.redis.process is not None
            and self.redis.process.poll() is not None
        ):
            return Child("redis-server", self.redis.process)
        return None

    def stop(self) -> None:
        """Stop API and workers (SIGTERM, then SIGKILL after ``grace_s``), then the embedded Redis."""
        for child in self.children:
            if child.process.poll() is None:
                child.process.terminate()
        deadline = time.monotonic() + self.grace_s
        for child in self.children:
            try:
                child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
        self.children.clear()
        if self.redis is not None:
            self.redis.stop()
            self.redis = None

    def _child_env(self) -> dict[str, str]:
        env = dict(self.env)
        env["NEURONLENS_REDIS_URL"] = self.effective_redis_url
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def _api_command(self) -> list[str]:
        return [
            sys.executable, "-m", "uvicorn", "--factory", "service.app:app_from_env",
            "--host", self.host, "--port", str(self.port),
        ]  # fmt: skip

    def _worker_command(self, index: int) -> list[str]:
        name = f"{socket.gethostname()}.{os.getpid()}.{index}"
        return [sys.executable, "-m", "workers.worker", "--queues", "scan,explain", "--name", name]

    def _spawn(self, name: str, command: list[str], env: dict[str, str]) -> None:
        process = subprocess.Popen(
            command,
            env=env,
            stdout=self.output,
            stderr=subprocess.STDOUT if self.output is not None else None,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        self.children.append(Child(name, process))

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=2.0) as client:
            while not self.stopping.is_set():
                dead = self.dead_child()
                if dead is not None:
                    raise StackError(
                        f"{dead.name} (pid {dead.pid}) {dead.describe_exit()} before the API was ready"
                    )
                try:
                    if client.get(f"{self.api_url}/readyz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise StackError(f"the API did not answer {self.api_url}/readyz within {timeout_s:.0f}s")
                time.sleep(0.2)
        # A stop was requested while starting: the caller sees `stopping` set and stops the stack.
        return
