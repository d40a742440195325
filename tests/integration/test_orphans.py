"""No orphans: the engine's processes and the embedded broker die with the process that started them.

Every test records the whole process tree *before* killing its root, then checks each recorded process by
identity (psutil compares the start time, so a reused pid is not mistaken for ours; a zombie counts as dead).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from tests.support import free_port
from zoomguard.kafka.embedded_broker import EmbeddedBroker
from zoomguard.process_guard import TERMINATE_GRACE_S, watch_parent
from zoomguard.samples import write_samples

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux only")

# A chain's deepest link may wait out two grace periods (its parent ignored SIGTERM and was killed after one).
CHAIN_DEADLINE_S = 2 * TERMINATE_GRACE_S + 10


def _alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.NoSuchProcess:
            pass
    return alive


def _wait_all_dead(processes: list[psutil.Process], timeout: float) -> float:
    """Seconds until none of `processes` runs; fails naming the survivors."""
    start = time.monotonic()
    while _alive(processes):
        if time.monotonic() - start > timeout:
            survivors = [f"{p.pid} {p.name()}" for p in _alive(processes)]
            pytest.fail(f"still running {timeout:.0f}s after their parent died: {survivors}")
        time.sleep(0.1)
    return time.monotonic() - start


def _ppid(process: psutil.Process) -> int | None:
    try:
        return process.ppid()
    except psutil.Error:
        return None


def _wait_tree(
    root: subprocess.Popen[bytes], ready: Callable[[list[psutil.Process]], bool], timeout: float
) -> list[psutil.Process]:
    """The root and all its descendants once `ready(descendants)` holds."""
    deadline = time.monotonic() + timeout
    parent = psutil.Process(root.pid)
    while time.monotonic() < deadline:
        assert root.poll() is None, f"exited early with status {root.returncode}"
        descendants = parent.children(recursive=True)
        if ready(descendants):
            return [parent, *descendants]
        time.sleep(0.2)
    pytest.fail(f"process tree not ready within {timeout}s")


@contextlib.contextmanager
def _reaped(processes: list[psutil.Process]) -> Iterator[None]:
    """On failure, kill what survived, so one broken test does not leave busy processes behind. The resource
    tracker is left to exit by itself: killing it would leak the shared memory it still has to unlink."""
    try:
        yield
    finally:
        for process in _alive(processes):
            with contextlib.suppress(psutil.Error):
                if "resource_tracker" not in " ".join(process.cmdline()):
                    process.kill()


# --- multiprocessing children, the mechanism the vLLM plugin uses ----------------------------------------

CHAIN_SCRIPT = textwrap.dedent(
    """
    import multiprocessing, signal, sys, time

    def load():
        # what vLLM's EngineCore and workers do when they start: load the general plugins
        if sys.argv[2] == "vllm":
            from vllm.plugins import load_general_plugins
            load_general_plugins()
        else:
            from zoomguard.process_guard import watch_parent
            watch_parent()

    def grandchild():
        load()
        time.sleep(600)

    def child():
        load()
        if sys.argv[3] == "ignore-sigterm":  # like vLLM's EngineCore, whose handler does not exit at once
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        multiprocessing.get_context(sys.argv[1]).Process(target=grandchild, name="grandchild").start()
        time.sleep(600)

    if __name__ == "__main__":
        load()  # vLLM loads the plugins in the process that builds the engine too
        multiprocessing.get_context(sys.argv[1]).Process(target=child, name="child").start()
        time.sleep(600)
    """
)


@pytest.mark.parametrize(
    ("method", "loader", "sigterm"),
    [
        # forked children inherit vLLM's "plugins loaded" flag, so only the fork hook protects them
        ("fork", "vllm", "ignore-sigterm"),
        ("spawn", "direct", "default"),
    ],
)
def test_multiprocessing_children_die_with_a_killed_parent(
    tmp_path: Path, method: str, loader: str, sigterm: str
) -> None:
    script = tmp_path / "chain.py"
    script.write_text(CHAIN_SCRIPT)
    root = subprocess.Popen([sys.executable, str(script), method, loader, sigterm], cwd=Path(__file__).parents[2])
    tree: list[psutil.Process] = []
    try:
        # ready when the grandchild exists: the child ran load() first
        tree = _wait_tree(root, lambda d: any(_ppid(p) not in (root.pid, None) for p in d), timeout=120)
        with _reaped(tree):
            root.kill()
            root.wait()
            elapsed = _wait_all_dead(tree[1:], CHAIN_DEADLINE_S)
        if sigterm == "ignore-sigterm":
            assert elapsed >= TERMINATE_GRACE_S - 0.5  # it took the SIGKILL after the grace period
    finally:
        root.kill()
        root.wait()


def test_watch_parent_is_harmless_in_a_process_that_is_no_child() -> None:
    before = {t.name for t in threading.enumerate()}
    watch_parent()
    watch_parent()
    assert "zoomguard-parent-watch" not in {t.name for t in threading.enumerate()} - before


def test_vllm_loads_the_plugin() -> None:
    from vllm.plugins import DEFAULT_PLUGINS_GROUP, load_plugins_by_group

    if os.environ.get("VLLM_PLUGINS") is not None and "zoomguard_parent_watch" not in os.environ["VLLM_PLUGINS"]:
        pytest.skip("VLLM_PLUGINS leaves the plugin out")
    assert load_plugins_by_group(DEFAULT_PLUGINS_GROUP)["zoomguard_parent_watch"] is watch_parent


# --- the real in-process engine --------------------------------------------------------------------------


def test_engine_processes_die_with_a_killed_worker(tmp_path: Path, tiny_model: Path) -> None:
    """SIGKILL `zoomguard detect` while the engine is answering: EngineCore, its model worker and every other
    process it started go too."""
    image = write_samples(tmp_path / "in", 1, seed=5, size=(200, 150))[0]
    config = tmp_path / "tiny.toml"
    config.write_text('[engine]\ndtype = "float32"\nenforce_eager = true\nmax_model_len = 4096\n'
                      "[detector]\nmax_pixels = 50176\n")  # fmt: skip
    out, log = tmp_path / "out.jsonl", tmp_path / "detect.log"
    command = [sys.executable, "-m", "zoomguard.cli", "detect", *[str(image)] * 400, "--model", str(tiny_model),
               "--config", str(config), "--json", "--concurrency", "2", "--no-progress"]  # fmt: skip
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    with out.open("wb") as sink, log.open("wb") as errors:
        root = subprocess.Popen(command, stdout=sink, stderr=errors, env=env)
    try:
        deadline = time.monotonic() + 400
        while out.stat().st_size == 0:  # the first verdict: the engine is up and serving
            assert root.poll() is None, f"detect exited with status {root.returncode}:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no verdict from detect:\n{log.read_text()[-3000:]}"
            time.sleep(0.5)
        tree = _wait_tree(root, lambda d: len(d) >= 2, timeout=10)
        descendants = tree[1:]
        assert any(_ppid(p) not in (root.pid, None) for p in descendants)  # EngineCore's own worker process
        with _reaped(descendants):
            root.kill()
            root.wait()
            elapsed = _wait_all_dead(descendants, CHAIN_DEADLINE_S)
        print(f"engine processes gone {elapsed:.1f}s after the kill")
    finally:
        root.kill()
        root.wait()


# --- the embedded broker ---------------------------------------------------------------------------------


def _start_broker_command(port: int, log: Path) -> tuple[subprocess.Popen[bytes], psutil.Process]:
    command = [sys.executable, "-m", "zoomguard.cli", "broker", "--port", str(port)]
    with log.open("wb") as errors:
        root = subprocess.Popen(command, stderr=errors)
    deadline = time.monotonic() + 60
    while "listening" not in log.read_text():
        assert root.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    tansu = [p for p in psutil.Process(root.pid).children() if p.name() == "tansu"]
    assert len(tansu) == 1, tansu
    return root, tansu[0]


def _port_released(port: int) -> bool:
    """Nothing accepts connections on `port`, and it can be listened on again."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except OSError:
        pass
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _port_free(port: int, timeout: float = 10.0) -> bool:
    """Whether `port` is released within `timeout`. A killed multi-threaded process shows as a zombie once its
    first thread is gone, a moment before the last thread closes its sockets, so the port is polled."""
    deadline = time.monotonic() + timeout
    while not _port_released(port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@linux_only
def test_broker_dies_with_a_killed_broker_command(tmp_path: Path) -> None:
    port = free_port()
    root, tansu = _start_broker_command(port, tmp_path / "broker.log")
    with _reaped([tansu]):
        root.kill()
        root.wait()
        _wait_all_dead([tansu], timeout=5)
    assert _port_free(port)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda sig: sig.name)
def test_broker_command_stops_the_broker_and_exits_0_on_signal(tmp_path: Path, sig: signal.Signals) -> None:
    port = free_port()
    root, tansu = _start_broker_command(port, tmp_path / "broker.log")
    with _reaped([tansu]):
        root.send_signal(sig)
        assert root.wait(timeout=15) == 0
        assert not _alive([tansu])  # stopped before the command returned
    assert _port_free(port)


@linux_only
def test_broker_outlives_the_thread_that_started_it() -> None:
    """The parent-death signal fires when the thread that forked the child exits: a broker started from a
    short-lived thread must still run after it."""
    broker = EmbeddedBroker()
    starter = threading.Thread(target=broker.start)
    starter.start()
    starter.join()
    try:
        time.sleep(0.5)
        assert broker.poll() is None
        socket.create_connection((broker.host, broker.port), timeout=2).close()
    finally:
        broker.stop()
