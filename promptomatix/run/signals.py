"""Stopping on SIGTERM and SIGHUP the way Ctrl-C stops.

SIGTERM is what `timeout`, `docker stop`, Kubernetes and systemd send, SIGHUP what a closed
terminal sends. Python's default for both is to die at once, which leaves the MLflow run RUNNING
with no reason on it. Inside `stop_on_signals()` they raise `Terminated` instead, a
KeyboardInterrupt: every place that already cleans up after Ctrl-C (the run ended KILLED with its
reason, a half-done registration undone, `mlflow run` cancelling its child run) does the same
for them. The process then exits with 128 + the signal's number, as a shell reports a process
the signal killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

R = TypeVar("R")

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def is_stop_reason(reason: str) -> bool:
    """Whether a run's `promptomatix.error` says a stop signal ended it (see `Terminated`)."""
    return reason.startswith("stopped by SIG")


class Terminated(KeyboardInterrupt):
    """The process was asked to stop by `signum` (SIGTERM or SIGHUP)."""

    def __init__(self, signum: int):
        self.signum = signum
        self.detail = ""  # what became of the work, added by whoever cleaned up (the run, how to resume)
        super().__init__(f"stopped by {signal.Signals(signum).name}")

    def __str__(self) -> str:
        return f"{super().__str__()}; {self.detail}" if self.detail else super().__str__()

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@contextlib.contextmanager
def stop_on_signals(keep_handlers: bool = False) -> Iterator[None]:
    """SIGTERM and SIGHUP raise `Terminated` in the main thread while inside. A second signal
    while the first is being handled is ignored, so the clean-up (a few store writes) is not cut
    short; SIGKILL still ends the process. Outside the main thread (where Python cannot set
    handlers) nothing changes. A signal the process ignores stays ignored (`nohup` ignores
    SIGHUP so that a closed terminal does not stop the job); with `keep_handlers`, so does one
    a handler of the program's own is set for (a library call inside someone's application)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    taken = [signum for signum in STOP_SIGNALS if signal.getsignal(signum) is not signal.SIG_IGN
             and (not keep_handlers or signal.getsignal(signum) is signal.SIG_DFL)]
    received: list[int] = []

    def handler(signum, frame):
        if received:
            log.warning("%s received again while stopping; still cleaning up", signal.Signals(signum).name)
            return
        received.append(signum)
        raise Terminated(signum)

    previous = {signum: signal.signal(signum, handler) for signum in taken}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def stops_on_signals(fn: Callable[..., R]) -> Callable[..., R]:
    """`fn` run inside `stop_on_signals(keep_handlers=True)`: a script calling the Python API
    under `timeout` (or in a container that is stopped) has its run ended KILLED with the reason,
    where Python's default would end the process at once and leave the run RUNNING. After the
    clean-up the process still dies of the signal, as the default it stood in for would have
    (worker threads in a model call would otherwise hold the exit for minutes). Handlers the
    calling program set stay in charge."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        defaults = {s for s in STOP_SIGNALS if signal.getsignal(s) is signal.SIG_DFL}
        try:
            with stop_on_signals(keep_handlers=True):
                return fn(*args, **kwargs)
        except Terminated as exc:
            if exc.signum in defaults and threading.current_thread() is threading.main_thread():
                die_of(exc)
            raise
    return wrapper


def die_of(exc: Terminated) -> None:
    """End the process by `exc`'s signal under its default disposition, its reason on stderr."""
    print(f"promptomatix: {exc}", file=sys.stderr)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    signal.signal(exc.signum, signal.SIG_DFL)
    os.kill(os.getpid(), exc.signum)


def stop_with_parent(signum: int = signal.SIGTERM) -> None:
    """Ask Linux to send `signum` to this process when its parent dies. `mlflow run` dies of a
    SIGTERM sent to it alone (`docker stop`, Kubernetes), without passing it on to the entry
    point it started: with this the entry point is stopped too, and ends its run KILLED, instead
    of running on unseen. Does nothing where prctl is missing (not Linux)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return
    PR_SET_PDEATHSIG = 1  # noqa: N806 (the kernel's name)
    if libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) != 0:
        log.debug("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())


def exit_now(code: int) -> None:
    """Exit with `code` after a stop signal, once the clean-up is done. Python waits at exit for
    every worker thread still in a model call; after a stop nothing is left to wait for, so when
    such threads are alive the process leaves at once (`os._exit`, streams flushed first)."""
    others = [t for t in threading.enumerate() if t is not threading.current_thread() and not t.daemon]
    if not others:
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
