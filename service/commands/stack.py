"""The embedded stack behind `neuronlens up` and `neuronlens demo`: Redis, the API and workers, supervised.

Every process runs in its own session, so a terminal's Ctrl-C reaches only the supervisor, which stops
them in order: API and workers first (SIGTERM: warm shutdown; SIGKILL after the grace period), Redis
last, because workers still write job state while they shut down. On Linux each child also gets SIGTERM
from the kernel if the supervisor itself dies, so no stray redis-server or worker outlives it.

With a ``data_dir`` the embedded Redis keeps an append-only file in ``<data_dir>/redis`` and the artifact
store (scans, reports, images) defaults to ``<data_dir>/artifacts``, so a stopped (or killed) stack started
again on the same folder finds every job and report. `neuronlens up`'s default data folder is
``settings.default_data_dir``, whose ``artifacts/`` is every process's default store: `up` and `demo`
(no data folder: a temporary Redis, the default store) share their scans. One stack at a time holds a
folder (an advisory lock).

A worker or the API that dies is started again after a backoff (1 s, doubling up to
``RESTART_BACKOFF_MAX_S``; reset once it ran ``RESTART_RESET_AFTER_S``); Redis and the other processes
keep running, and a job the dead worker held is retried through the abandoned-job path
(workers/process/rq_worker.py).

No torch, no `workers` import: workers are started as `python -m workers.process.worker`.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit, urlunsplit

import httpx

from service.commands.embedded_redis import EmbeddedRedis, die_with_parent

DEFAULT_GRACE_S = 10.0
"""Seconds a child gets to exit after SIGTERM before it is killed."""

READY_TIMEOUT_S = 120.0
"""Seconds to wait for the API's /readyz to answer 200 at start."""

RESTART_BACKOFF_S = 1.0
"""Seconds before the first restart of a child that died; doubles per consecutive death."""

RESTART_BACKOFF_MAX_S = 30.0
"""Longest wait before restarting a child that keeps dying, seconds."""

RESTART_RESET_AFTER_S = 60.0
"""A child that ran this many seconds before dying is restarted after the first backoff again."""

LOCK_FILE = "neuronlens.lock"
"""Advisory lock in the data folder: held by the one stack that uses the folder."""


class StackError(RuntimeError):
    """The stack could not start, or one of its processes died; the message says which and why."""


@dataclass
class Child:
    """One supervised process, with what it takes to start it again."""

    name: str
    process: subprocess.Popen[bytes]
    command: list[str] = field(default_factory=list)
    started_at: float = field(default_factory=time.monotonic)
    restarts: int = 0
    """Times it was started again after dying."""
    backoff_s: float = RESTART_BACKOFF_S
    """Wait before the next restart, seconds."""
    restart_at: float | None = None
    """Monotonic time of the pending restart; None while it runs."""

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
    ``data_dir`` makes the embedded Redis persistent (None: a temporary, non-persistent one).
    ``log`` receives the supervisor's own messages (restarts).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    n_workers: int = 1
    redis_url: str | None = None
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    output: IO[bytes] | None = None
    grace_s: float = DEFAULT_GRACE_S
    stopping: threading.Event = field(default_factory=threading.Event)
    data_dir: Path | None = None
    log: IO[str] = field(default_factory=lambda: sys.stderr)
    redis: EmbeddedRedis | None = field(default=None, init=False)
    children: list[Child] = field(default_factory=list, init=False)
    _lock_file: IO[bytes] | None = field(default=None, init=False)

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
            if self.data_dir is not None:
                self._lock_data_dir(self.data_dir)
            if not self.redis_url:
                self.redis = EmbeddedRedis(
                    data_dir=self.data_dir / "redis" if self.data_dir is not None else None,
                    append_only=self.data_dir is not None,
                    own_session=True,
                ).start()
            child_env = self.child_env()
            self._spawn("api", self._api_command(), child_env)
            for index in range(1, self.n_workers + 1):
                name = f"worker-{index}"
                self._spawn(name, self._worker_command(name, 0), child_env)
            self._wait_ready(ready_timeout_s)
        except BaseException:
            self.stop()
            raise

    def dead_child(self) -> Child | None:
        """A child that has exited, if any (the stack is unhealthy then)."""
        for child in self.children:
            if child.restart_at is None and child.process.poll() is not None:
                return child
        return self.dead_redis()

    def dead_redis(self) -> Child | None:
        """The embedded Redis when it has exited (the stack cannot go on without it)."""
        if (
            self.redis is not None
            and self.redis.process is not None
            and self.redis.process.poll() is not None
        ):
            return Child("redis-server", self.redis.process)
        return None

    def heal(self) -> None:
        """Schedule a restart for each child that died (logged) and start those whose backoff is over."""
        now = time.monotonic()
        for child in self.children:
            if child.restart_at is None and child.process.poll() is not None:
                if now - child.started_at >= RESTART_RESET_AFTER_S:
                    child.backoff_s = RESTART_BACKOFF_S
                child.restart_at = now + child.backoff_s
                print(
                    f"neuronlens: {child.name} (pid {child.pid}) {child.describe_exit()}; "
                    f"restarting it in {child.backoff_s:g}s (restart {child.restarts + 1})",
                    file=self.log,
                    flush=True,
                )
                child.backoff_s = min(child.backoff_s * 2, RESTART_BACKOFF_MAX_S)
            elif child.restart_at is not None and now >= child.restart_at:
                child.restarts += 1
                if child.name.startswith("worker-"):
                    # A new worker name: the dead worker's registration lives until its key expires.
                    child.command = self._worker_command(child.name, child.restarts)
                child.process = self._popen(child.command, self.child_env())
                child.started_at, child.restart_at = now, None
                print(f"neuronlens: {child.name} started again (pid {child.pid})", file=self.log, flush=True)

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
        if self._lock_file is not None:
            self._lock_file.close()  # releases the lock
            self._lock_file = None

    def _lock_data_dir(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        lock_file = (data_dir / LOCK_FILE).open("ab")
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock_file.close()
            raise StackError(
                f"another `neuronlens up` uses the data folder {data_dir}: "
                "stop it, or choose another --data-dir"
            ) from None
        self._lock_file = lock_file

    def child_env(self) -> dict[str, str]:
        """The environment of the API and workers: the Redis URL, and the artifact store in the data folder
        unless NEURONLENS_ARTIFACT_URL names one (without a data folder: the settings' default store)."""
        env = dict(self.env)
        env["NEURONLENS_REDIS_URL"] = self.effective_redis_url
        if self.data_dir is not None and not env.get("NEURONLENS_ARTIFACT_URL"):
            env["NEURONLENS_ARTIFACT_URL"] = str(self.data_dir / "artifacts")
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def _api_command(self) -> list[str]:
        return [
            sys.executable, "-m", "uvicorn", "--factory", "service.http.app:app_from_env",
            "--host", self.host, "--port", str(self.port),
        ]  # fmt: skip

    def _worker_command(self, child_name: str, restarts: int) -> list[str]:
        index = child_name.removeprefix("worker-")
        name = f"{socket.gethostname()}.{os.getpid()}.{index}" + (f".r{restarts}" if restarts else "")
        return [sys.executable, "-m", "workers.process.worker", "--queues", "scan,explain", "--name", name]

    def _popen(self, command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            command,
            env=env,
            stdout=self.output,
            stderr=subprocess.STDOUT if self.output is not None else None,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )

    def _spawn(self, name: str, command: list[str], env: dict[str, str]) -> None:
        self.children.append(Child(name, self._popen(command, env), command))

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
