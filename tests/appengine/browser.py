"""Headless Debian Chromium under Playwright, and a self-signed certificate for loopback TLS."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import require

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OPENSSL_TIMEOUT = 30


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (and its key, 0600), made with openssl."""
    require(shutil.which("openssl") is not None, "needs openssl")
    cert, key = directory / "installer.pem", directory / "installer.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True, capture_output=True, timeout=OPENSSL_TIMEOUT,
    )  # fmt: skip
    key.chmod(0o600)
    return cert, key


def spki_pin(cert: Path) -> str:
    """base64 SHA-256 of the certificate's public key: what Chromium's SPKI list takes."""
    pem = subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-pubkey", "-noout"],
        check=True, capture_output=True, timeout=OPENSSL_TIMEOUT,
    ).stdout  # fmt: skip
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-outform", "der"],
        input=pem, check=True, capture_output=True, timeout=OPENSSL_TIMEOUT,
    ).stdout  # fmt: skip
    return base64.b64encode(hashlib.sha256(der).digest()).decode("ascii")


@contextmanager
def chromium_page(profile: Path, trusted_cert: Path | None = None) -> Iterator[object]:
    """A Playwright page in headless Chromium; it trusts ``trusted_cert``'s key and no other."""
    require(os.path.exists(CHROMIUM), "needs Debian's chromium")
    from playwright.sync_api import sync_playwright

    args = list(CHROMIUM_ARGS)
    if trusted_cert is not None:
        # Only this key is accepted without a CA: the TLS handshake is real, the trust pinned.
        args.append(f"--ignore-certificate-errors-spki-list={spki_pin(trusted_cert)}")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            user_data_dir=str(profile), executable_path=CHROMIUM, headless=True, args=args
        )
        try:
            yield context.new_page()
        finally:
            context.close()
