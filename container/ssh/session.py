"""`vulcano ssh`'s two ways of using a connection: a command whose output streams as it
comes (stdout and stderr apart), or an interactive shell on a terminal.

Either way the channel is closed when the command or shell ends, or when we are
interrupted, so no session is left open on the host.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import paramiko

from container.ssh.connection import Connection

_READ = 32768


def stream(connection: Connection, command: str, out: BinaryIO, err: BinaryIO) -> int:
    """Run ``command``, copying its stdout and stderr as they arrive; its exit status."""
    channel = connection.open_session()
    try:
        channel.exec_command(command)
        errors = threading.Thread(target=_copy, args=(channel.recv_stderr, err), daemon=True)
        errors.start()
        _copy(channel.recv, out)
        errors.join()
        return channel.recv_exit_status()
    finally:
        channel.close()


def _copy(read: Callable[[int], bytes], sink: BinaryIO) -> None:
    while data := read(_READ):
        sink.write(data)
        sink.flush()


def interactive(connection: Connection) -> int:
    """A login shell on the host, with a terminal when stdin is one; its exit status."""
    channel = connection.open_session()
    try:
        tty = sys.stdin.isatty()
        if tty:
            size = shutil.get_terminal_size()
            channel.get_pty(os.environ.get("TERM", "vt100"), size.columns, size.lines)
        channel.invoke_shell()
        with _raw_terminal(tty), _resized_with_terminal(channel, tty):
            _pump_terminal(channel)
        return channel.recv_exit_status()
    finally:
        channel.close()


def _pump_terminal(channel: paramiko.Channel) -> None:
    stdin = sys.stdin.fileno()
    stdout = sys.stdout.buffer
    stdin_open = True
    while True:
        watched: list[Any] = [channel, stdin] if stdin_open else [channel]
        ready, _, _ = select.select(watched, [], [])
        if channel in ready:
            data = channel.recv(_READ)
            if not data:
                return
            stdout.write(data)
            stdout.flush()
        if stdin in ready:
            data = os.read(stdin, _READ)
            if data:
                channel.sendall(data)
            else:
                stdin_open = False
                channel.shutdown_write()


@contextlib.contextmanager
def _resized_with_terminal(channel: paramiko.Channel, tty: bool) -> Iterator[None]:
    """The remote terminal follows the local one's size (SIGWINCH), while the shell runs."""
    if not tty or threading.current_thread() is not threading.main_thread():
        yield
        return

    def resize(*_: object) -> None:
        size = shutil.get_terminal_size()
        channel.resize_pty(size.columns, size.lines)

    previous = signal.signal(signal.SIGWINCH, resize)
    try:
        yield
    finally:
        signal.signal(signal.SIGWINCH, previous)


@contextlib.contextmanager
def _raw_terminal(tty: bool) -> Iterator[None]:
    if not tty:
        yield
        return
    import termios
    import tty as ttymod

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        ttymod.setraw(fd, termios.TCSANOW)  # TCSAFLUSH would drop what was typed ahead
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
