"""Child processes that die with their parent, even when the parent is killed with SIGKILL.

vLLM's in-process engine runs in child processes (EngineCore, then its model workers) that nothing stops
when the worker that built the engine is SIGKILLed: they keep busy-polling, holding RAM and GPU memory.
`watch_parent` is registered as a vLLM general plugin (entry point group `vllm.general_plugins`, name
`zoomguard_parent_watch`); vLLM calls such plugins in the process that builds the engine and in every
process it starts. In a multiprocessing child it starts a daemon thread that waits for the parent to exit
and then ends this process; its own children see it exit and follow, in a chain.

The embedded broker (a Rust binary, not a multiprocessing child) uses `die_with_parent_preexec` instead:
the kernel's parent-death signal, set between fork and exec.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import multiprocessing
import multiprocessing.connection
import multiprocessing.util
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

# After the parent is gone: SIGTERM first (vLLM's handlers stop the EngineCore's workers and free shared
# memory and devices cleanly), SIGKILL if the process is still there after this long.
TERMINATE_GRACE_S = 3.0

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

_hook_registered = False
_watching_pid: int | None = None  # the process whose watch thread runs (a forked child inherits the value)


def watch_parent() -> None:
    """End this process when its multiprocessing parent dies, and make every multiprocessing child forked from
    here on do the same. Idempotent, cheap, and in a process that is not a multiprocessing child (the worker
    itself) it only registers the fork hook.

    The hook is needed because vLLM loads plugins once per process: a child *forked* after the parent loaded
    them inherits the "loaded" flag and never calls the plugin. Spawned children call it themselves.
    """
    global _hook_registered
    if not _hook_registered:
        multiprocessing.util.register_after_fork(watch_parent, _after_fork)
        _hook_registered = True
    _start_watch()


def _after_fork(_: object) -> None:
    """Runs in each fork-started multiprocessing child, after its parent's sentinel is known."""
    _start_watch()


def _start_watch() -> None:
    global _watching_pid
    parent = multiprocessing.parent_process()
    if parent is None or parent.pid is None or _watching_pid == os.getpid():
        return
    _watching_pid = os.getpid()
    handles = [handle for handle in (parent.sentinel, _pidfd_of_parent(parent.pid)) if handle is not None]
    if not handles:
        return
    thread = threading.Thread(
        target=_wait_then_terminate, args=(parent.pid, handles), name="zoomguard-parent-watch", daemon=True
    )
    thread.start()


def _pidfd_of_parent(pid: int) -> int | None:
    """A pidfd of the parent (Linux 5.3+): readable exactly when that process exits. The sentinel alone can be
    held open by a sibling forked later (it inherits the parent's end of the pipe); the pidfd cannot."""
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        return None
    try:
        fd = int(pidfd_open(pid))
    except OSError:
        return None
    if os.getppid() != pid:  # re-parented already (or not our OS parent): this pid may name another process
        os.close(fd)
        return None
    return fd


def _wait_then_terminate(parent_pid: int, handles: list[int]) -> None:
    try:
        multiprocessing.connection.wait(handles)
    except (OSError, ValueError):  # a handle was closed under us: the watch ends, which is no reason to die
        return
    _say(f"zoomguard: parent process {parent_pid} exited: stopping process {os.getpid()}\n")
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(TERMINATE_GRACE_S)
    os.kill(os.getpid(), signal.SIGKILL)


def _say(message: str) -> None:
    """One line on stderr with a raw write: no logging locks or handlers, which a dying process may not have."""
    with contextlib.suppress(OSError):
        os.write(2, message.encode())


def die_with_parent_preexec() -> Callable[[], None] | None:
    """A `preexec_fn` that has the kernel SIGKILL the child when the thread that forked it exits (Linux
    PR_SET_PDEATHSIG), and kills it at once when the parent already died before the signal was set. None where
    prctl is not available. Everything is resolved here, before fork: the child only calls prctl and getppid."""
    prctl = _prctl()
    if prctl is None:
        return None
    parent_pid = os.getpid()
    kill_signal = int(signal.SIGKILL)

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, kill_signal, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died between fork and prctl: nobody will signal us
            os.kill(os.getpid(), kill_signal)

    return preexec


@functools.cache
def _prctl() -> Any:
    """libc's prctl, looked up once; None off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # libc is already loaded into every Python process
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl
