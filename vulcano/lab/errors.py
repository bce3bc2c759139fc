"""The lab's errors: one root, each subclass also the builtin it resembles."""

from __future__ import annotations

from vulcano.errors import VulcanoError


class LabError(VulcanoError):
    """Base of the errors the lab (images and machines) raises on purpose."""


class PodmanError(LabError, RuntimeError):
    """A podman (or mmdebstrap, pip) command failed; the message holds its output."""

    def __init__(self, argv: list[str], returncode: int, output: str) -> None:
        shown = " ".join(argv[:6]) + (" ..." if len(argv) > 6 else "")
        super().__init__(f"`{shown}` exited {returncode}:\n{output.strip()[-4000:]}")
        self.argv = argv
        self.returncode = returncode
        self.output = output


class MachineError(LabError, RuntimeError):
    """A machine did not come up as expected; the message holds what it logged."""


class CloudInitFailed(MachineError):
    """cloud-init finished with status error (or never finished); carries its log."""

    def __init__(self, machine: str, status: str, log: str) -> None:
        super().__init__(f"cloud-init on {machine}: {status}\n--- its log ---\n{log}")
        self.machine = machine
        self.status = status
        self.log = log
