"""Sending an alert: e-mail over SMTP and a JSON POST to each webhook.

The SMTP server comes from app config (``SMTP_HOST``, ``SMTP_PORT``, ``SMTP_FROM``,
``SMTP_USER``, ``SMTP_PASSWORD``, ``SMTP_STARTTLS``), set from ``VULCANO_SMTP_*`` in the
environment; without ``SMTP_HOST`` e-mail alerts are not sent (and the page says so).
Timeouts and retries are `appengine.policy`'s. A webhook whose host resolves to a
loopback, private, link-local (the metadata server) or otherwise non-public address is
refused unless ``ALERT_WEBHOOK_ALLOW_PRIVATE`` is set (tests, on-prem installers): the
URL is the user's, the request is the installer's. A webhook gets::

    {"install": <cluster name>,
     "alert": {change, cluster, subject, was, now, at, detail, recovery}, "test": false}

``change`` is an `alert_rules.Change` value (machine-down, balancer-stale, ...);
``detail`` is what the summary said of the subject (a stale balancer's error) or "".
"""

from __future__ import annotations

import email.utils
import ipaddress
import logging
import os
import smtplib
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import requests

from appengine import policy
from appengine.alert_rules import Transition

log = logging.getLogger(__name__)

_ENV = {
    "SMTP_HOST": "VULCANO_SMTP_HOST",
    "SMTP_PORT": "VULCANO_SMTP_PORT",
    "SMTP_FROM": "VULCANO_SMTP_FROM",
    "SMTP_USER": "VULCANO_SMTP_USER",
    "SMTP_PASSWORD": "VULCANO_SMTP_PASSWORD",
    "SMTP_STARTTLS": "VULCANO_SMTP_STARTTLS",
    "ALERT_WEBHOOK_ALLOW_PRIVATE": "VULCANO_ALERT_WEBHOOK_ALLOW_PRIVATE",
}
_TRUE = {"1", "true", "yes", "on"}


def from_environment(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """The SMTP settings the environment gives, as app config."""
    config: dict[str, Any] = {key: environ[var] for key, var in _ENV.items() if environ.get(var)}
    if "SMTP_PORT" in config:
        config["SMTP_PORT"] = int(config["SMTP_PORT"])
    for flag in ("SMTP_STARTTLS", "ALERT_WEBHOOK_ALLOW_PRIVATE"):
        if flag in config:
            config[flag] = config[flag].lower() in _TRUE
    return config


@dataclass(frozen=True)
class Delivery:
    """How sending one alert went: what reached its destination and what did not."""

    sent: tuple[str, ...]
    failed: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return not self.failed


def deliver(
    alert: Transition,
    emails: Sequence[str],
    webhooks: Sequence[str],
    config: Mapping[str, Any],
    test: bool = False,
) -> Delivery:
    """Send ``alert`` to every address and webhook; never raises for a destination's fault."""
    sent: list[str] = []
    failed: list[str] = []
    if emails:
        if _send_mail(alert, emails, config, test):
            sent.extend(f"mailto:{a}" for a in emails)
        else:
            failed.extend(f"mailto:{a}" for a in emails)
    for url in webhooks:
        allow_private = bool(config.get("ALERT_WEBHOOK_ALLOW_PRIVATE"))
        (sent if _post_webhook(alert, url, test, allow_private) else failed).append(url)
    return Delivery(tuple(sent), tuple(failed))


def _message(alert: Transition, emails: Sequence[str], sender: str, test: bool) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = ("[test] " if test else "") + alert.title
    message["From"] = sender
    message["To"] = ", ".join(emails)
    message["Date"] = email.utils.formatdate(usegmt=True)
    message["Message-ID"] = email.utils.make_msgid(domain=sender.rpartition("@")[2] or None)
    lines = [alert.text, f"at {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(alert.at))}"]
    if test:
        lines.append("This is a test alert, sent from the install's page.")
    message.set_content("\n".join(lines) + "\n")
    return message


def _send_mail(
    alert: Transition, emails: Sequence[str], config: Mapping[str, Any], test: bool
) -> bool:
    host = config.get("SMTP_HOST")
    if not host:
        log.warning("no SMTP_HOST configured: e-mail alert for %s not sent", alert.cluster)
        return False
    sender = str(config.get("SMTP_FROM") or "vulcano@localhost")
    message = _message(alert, emails, sender, test)
    for attempt in range(policy.SMTP_ATTEMPTS):
        try:
            with smtplib.SMTP(
                host, int(config.get("SMTP_PORT", 25)), timeout=policy.SMTP_TIMEOUT
            ) as smtp:
                if config.get("SMTP_STARTTLS"):
                    smtp.starttls()
                if config.get("SMTP_USER"):
                    smtp.login(str(config["SMTP_USER"]), str(config.get("SMTP_PASSWORD", "")))
                smtp.send_message(message)
            return True
        except smtplib.SMTPRecipientsRefused:
            log.error("SMTP server refused the alert's recipients for %s", alert.cluster)
            return False
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("SMTP attempt %d failed (%s)", attempt + 1, type(exc).__name__)
    return False


def public_host(url: str) -> bool:
    """True when every address ``url``'s host resolves to is a public (global) one."""
    host = urlsplit(url).hostname or ""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return False
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(ipaddress.ip_address(a).is_global for a in addresses)


def _post_webhook(alert: Transition, url: str, test: bool, allow_private: bool) -> bool:
    if not allow_private and not public_host(url):
        log.error("webhook refused: its host is not a public address (alert for %s)", alert.cluster)
        return False
    body = {"install": alert.cluster, "alert": alert.to_dict(), "test": test}
    delays = policy.WEBHOOK_BACKOFF.delays()
    for attempt in range(policy.WEBHOOK_ATTEMPTS):
        if attempt:
            time.sleep(next(delays))
        try:
            answer = requests.post(
                url, json=body, timeout=policy.WEBHOOK_TIMEOUT, allow_redirects=False
            )
        except requests.RequestException as exc:
            log.warning("webhook attempt %d unreachable (%s)", attempt + 1, type(exc).__name__)
            continue
        if 200 <= answer.status_code < 300:
            return True
        if answer.status_code < 500 and answer.status_code != 429:
            log.error("webhook refused the alert: %d", answer.status_code)
            return False
        log.warning("webhook attempt %d answered %d", attempt + 1, answer.status_code)
    return False
