"""Stopping a foreground command (`run`, `balancer`) on SIGTERM and SIGINT."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable


def stop_on_signals(stop: Callable[[], None]) -> None:
    """SIGTERM and SIGINT call ``stop`` from a thread of their own.

    Not from a Python signal handler: it runs between any two bytecodes of the main
    thread, also while that thread holds the stop event's lock inside ``Event.wait()``,
    and setting the event there deadlocks (the agent then ignored SIGTERM for good). The
    handlers do nothing; the signal's wakeup byte tells the watcher thread.
    """
    if threading.current_thread() is not threading.main_thread():
        return  # only the main thread can take signals (e.g. under a test runner)
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)

    def watch() -> None:
        while True:
            woke = os.read(read_fd, 16)
            if not woke or {signal.SIGTERM, signal.SIGINT} & set(woke):
                stop()
                return

    threading.Thread(target=watch, name="signals", daemon=True).start()
