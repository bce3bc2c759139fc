"""The hosted installer as the provisioning container reaches it: a discovery URL per cluster.

Its URL and the install's provisioner token come from the provisioning user-data: the
installer's unit sets ``VULCANO_INSTALLER_URL`` and ``VULCANO_INSTALLER_TOKEN_FILE`` (a
0600 file in the state dir; the token is never in the environment). With the token the
installer ties the discovery URL to the install (it shows on the install's page and is
deleted with it); without one (a CLI run where no installer made the state dir) it
makes an anonymous one, as discovery.etcd.io did.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import requests

from container import policy
from container.services.errors import InstallerError, SettingsError
from vulcano import cloudconfig

INSTALLER_URL_VAR = "VULCANO_INSTALLER_URL"
INSTALLER_TOKEN_FILE_VAR = "VULCANO_INSTALLER_TOKEN_FILE"  # noqa: S105 - a variable's name
# Where the installer's unit puts the token (vulcano.cloudconfig), in the state dir.
TOKEN_FILE_NAME = cloudconfig.INSTALLER_TOKEN_NAME
# An answer longer than this is not a discovery URL.
MAX_ANSWER_BYTES = 4096


@dataclass(frozen=True)
class Installer:
    """The installer at ``url``; ``token`` is the install's provisioner token, or ""."""

    url: str
    token: str = field(default="", repr=False)

    @classmethod
    def configured(
        cls, state_dir: Path, url: str | None = None, environ: Mapping[str, str] = os.environ
    ) -> Installer:
        """The installer ``url`` names (else the environment), with the token file's token.

        SettingsError when there is no URL, or a token file that cannot be read.
        """
        url = (url or environ.get(INSTALLER_URL_VAR, "")).rstrip("/")
        if not url:
            raise SettingsError(
                INSTALLER_URL_VAR, "", "no installer: set it or give --installer-url"
            )
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise SettingsError(INSTALLER_URL_VAR, url, "must be an http(s) URL with a host")
        named = environ.get(INSTALLER_TOKEN_FILE_VAR)
        path = Path(named or state_dir / TOKEN_FILE_NAME)
        try:
            token = path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            if named:  # the installer's unit said it is there
                raise SettingsError(INSTALLER_TOKEN_FILE_VAR, path, "no such file") from None
            token = ""
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingsError(INSTALLER_TOKEN_FILE_VAR, path, f"cannot be read: {exc}") from None
        if token and not cloudconfig.INSTALLER_TOKEN_RE.fullmatch(token):
            raise SettingsError(INSTALLER_TOKEN_FILE_VAR, path, "does not hold a token")
        return cls(url, token)

    def new_discovery_url(self, size: int) -> str:
        """``GET <installer>/new?size=N``: a fresh etcd discovery URL for ``size`` members.

        Retried on connection errors and 5xx (`container.policy`); InstallerError naming
        the installer when it cannot be reached or refuses.
        """
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        delay = policy.INSTALLER_RETRY_DELAY
        last = ""
        for attempt in range(policy.INSTALLER_ATTEMPTS):
            if attempt:
                time.sleep(delay)
                delay *= 2
            try:
                answer = requests.get(
                    f"{self.url}/new",
                    params={"size": str(size)},
                    headers=headers,
                    timeout=policy.INSTALLER_TIMEOUT,
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                last = f"unreachable ({type(exc).__name__})"
                continue
            if answer.status_code >= 500:
                last = f"answered {answer.status_code}"
                continue
            if answer.status_code != 200:
                raise InstallerError(
                    f"installer {self.url} refused a discovery URL: {answer.status_code} "
                    f"{_cause(answer)}"
                )
            return _discovery_url(self.url, answer)
        raise InstallerError(
            f"installer {self.url} {last} after {policy.INSTALLER_ATTEMPTS} attempts"
        )

    def send_test_alert(self) -> tuple[int, int]:
        """``POST <installer>/api/alerts/test``: a test alert to the install's destinations.

        Needs the provisioner token; how many destinations took it and how many did not.
        InstallerError when the installer cannot be reached or refuses (not retried: the
        operator asked once and sees at once).
        """
        if not self.token:
            raise InstallerError(f"installer {self.url}: a test alert needs the install's token")
        try:
            answer = requests.post(
                f"{self.url}/api/alerts/test",
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=policy.INSTALLER_TIMEOUT,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise InstallerError(
                f"installer {self.url} unreachable ({type(exc).__name__})"
            ) from None
        try:
            counts = answer.json() if answer.status_code == 200 else {}
            return int(counts["sent"]), int(counts["failed"])
        except (ValueError, KeyError, TypeError):
            raise InstallerError(
                f"installer {self.url} refused a test alert: {answer.status_code} {_cause(answer)}"
            ) from None


def _cause(answer: requests.Response) -> str:
    try:
        return str(answer.json().get("cause") or answer.json().get("message"))[:200]
    except (ValueError, AttributeError):
        return answer.text[:200].strip()


def _discovery_url(installer: str, answer: requests.Response) -> str:
    text = answer.content[:MAX_ANSWER_BYTES].decode("ascii", errors="replace").strip()
    parts = urlsplit(text)
    if parts.scheme not in {"http", "https"} or not parts.netloc or any(c.isspace() for c in text):
        raise InstallerError(f"installer {installer} answered no discovery URL: {text[:80]!r}")
    return text
