"""Cloud-config user-data: rendered from templates/cloud-config/, then checked.

Every value that reaches a template passes through a quoting filter that makes it a
scalar of the target language (a YAML double-quoted string, a JSON string, or a single
word in a systemd unit); the environment's ``finalize`` refuses any unquoted expression,
so a template cannot forget. After rendering, the document is parsed again and its
shape compared with a rendering of placeholder values: a user value that managed to add
a key, a list item or a unit-file line would make the shapes differ.

The provisioning container reuses this module for cluster nodes' user-data. The
quoting filters and the errors live in `vulcano.cloudquote` (re-exported here).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import SplitResult, quote, urlsplit

import jinja2
import yaml

from vulcano import image
from vulcano.cloudquote import (
    TEMPLATES,
    CloudConfigError,
    DocumentTooLarge,
    InputError,
    InvalidDocument,
    Quoted,
    _yaml_str,
    environment,
)
from vulcano.sshkeys import PublicKey

__all__ = [
    "TEMPLATES",
    "CloudConfigError",
    "DocumentTooLarge",
    "InputError",
    "InvalidDocument",
    "Quoted",
    "_yaml_str",
    "environment",
]

# Azure custom data and DigitalOcean user data both stop at 64 KiB.
MAX_DOCUMENT_BYTES = 64 * 1024

CLUSTER_SIZE_MAX = 100
# A cluster name, and a node's name (also its hostname): one lowercase DNS label.
DNS_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# Docker's reference grammar: [host[:port]/]path[/path...][:tag][@sha256:hex].
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_HOST = rf"(?:{_LABEL}(?:\.{_LABEL})*(?::[0-9]{{1,5}})?)"
_PATH = r"(?:[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)"
_IMAGE_RE = re.compile(
    rf"(?:{_HOST}/)?{_PATH}(?:/{_PATH})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?"
    r"(?:@sha256:[0-9a-f]{64})?"
)
IMAGE_MAX_CHARS = 255
# The installer's URL stands on a unit's Environment= line: one word of these characters.
_INSTALLER_URL_RE = re.compile(r"[A-Za-z0-9._:/@+=-]{1,512}")
# The install's provisioner token (appengine.models.provisioner_token: URL-safe base64).
INSTALLER_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{16,128}")
# Where the provisioning machine keeps the token (root's, 0600), and where the unit copies
# it for the container (the state dir, the image user's, 0600); the container reads the
# path from VULCANO_INSTALLER_TOKEN_FILE.
INSTALLER_TOKEN_HOST_PATH = "/etc/vulcano/installer-token"  # noqa: S105 - a path, not a secret
INSTALLER_TOKEN_NAME = "installer-token"  # noqa: S105 - a path, not a secret
# The install's reporting secret (appengine.reporting: `<install id>.<secret>`), which
# authenticates the container's heartbeats; kept and copied the same way, read from
# VULCANO_REPORT_TOKEN_FILE.
REPORT_TOKEN_RE = re.compile(r"[A-Za-z0-9_.-]{16,160}")
REPORT_TOKEN_HOST_PATH = "/etc/vulcano/report-token"  # noqa: S105 - a path, not a secret
REPORT_TOKEN_NAME = "report-token"  # noqa: S105 - a path, not a secret


@dataclass(frozen=True)
class Flavour:
    """One kind of user-data: its template, its language and its media type."""

    name: str
    template: str
    language: str  # "yaml" or "json"
    content_type: str
    description: str


FLAVOURS: dict[str, Flavour] = {
    f.name: f
    for f in (
        Flavour(
            "cloud-init",
            "provisioner.cloud-init.yaml.j2",
            "yaml",
            "text/cloud-config; charset=utf-8",
            "#cloud-config for Ubuntu/Debian images on Azure, DigitalOcean or bare metal",
        ),
        Flavour(
            "flatcar",
            "provisioner.flatcar.ign.j2",
            "json",
            "application/json",
            "Ignition config (spec 3.3) for Flatcar Container Linux",
        ),
        Flavour(
            "coreos-legacy",
            "provisioner.coreos-legacy.yaml.j2",
            "yaml",
            "text/cloud-config; charset=utf-8",
            "CoreOS cloud-config (coreos: units), for machines booted with coreos-cloudinit",
        ),
    )
}


@dataclass(frozen=True)
class ProvisionerSpec:
    """The answers the installer page collects: what the provisioning machine runs."""

    cluster_name: str
    ssh_keys: tuple[PublicKey, ...]
    flavour: str
    image: str
    size: int
    # Where the provisioning container reaches the installer that made this document, and
    # the install's provisioner token it proves itself with (a secret: written as a 0600
    # file, never on a unit line). Both or neither.
    installer_url: str = ""
    installer_token: str = ""
    # The install's reporting secret for heartbeats (a secret, like the token); needs the
    # installer's URL.
    report_token: str = ""
    # How the admin panel is reached: "https" on every address (the default), or
    # "localhost": plain HTTP on the machine's loopback, for an SSH tunnel (PANEL_ACCESS).
    panel_access: str = "https"


@dataclass(frozen=True)
class Document:
    """Rendered, checked user-data."""

    flavour: str
    text: str
    content_type: str
    data: Any  # the parsed document

    @property
    def size(self) -> int:
        return len(self.text.encode("utf-8"))


# --- user values ----------------------------------------------------------------------


def check_cluster_name(value: str) -> str:
    if not DNS_LABEL.fullmatch(value):
        raise InputError(
            "cluster_name",
            "use 1-63 lowercase letters, digits and '-', starting and ending with a "
            "letter or digit",
        )
    return value


def check_image(value: str, field: str = "image") -> str:
    """``value`` when it is an image reference; else InputError naming ``field``."""
    if len(value) > IMAGE_MAX_CHARS:
        raise InputError(field, f"longer than {IMAGE_MAX_CHARS} characters")
    if not _IMAGE_RE.fullmatch(value):
        raise InputError(
            field, "not a container image reference like registry.example/vulcano/provisioner:1.0"
        )
    return value


def check_size(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError("size", "must be a whole number")
    if not 1 <= value <= CLUSTER_SIZE_MAX:
        raise InputError("size", f"must be between 1 and {CLUSTER_SIZE_MAX}")
    return value


# How the provisioning machine's admin panel may be reached (the installer form's choice).
PANEL_ACCESS = {
    "https": "HTTPS on every address, with a certificate the panel makes (its fingerprint "
    "shown on the install page)",
    "localhost": "only from the machine itself: plain HTTP on 127.0.0.1, through an SSH tunnel",
}


def check_panel_access(value: str) -> str:
    if value not in PANEL_ACCESS:
        raise InputError("panel_access", f"choose one of {', '.join(PANEL_ACCESS)}")
    return value


def check_flavour(value: str) -> Flavour:
    try:
        return FLAVOURS[value]
    except KeyError:
        raise InputError("flavour", f"choose one of {', '.join(FLAVOURS)}") from None


def split_url(value: str, field: str, message: str) -> SplitResult:
    """urlsplit, with InputError(field, message) for what it cannot split ('http://[x]')."""
    try:
        return urlsplit(value)
    except ValueError:
        raise InputError(field, message) from None


def check_installer_url(value: str) -> str:
    """An http(s) URL with a host and nothing a unit line could misread."""
    message = "must be an http(s) URL with a host, no query"
    parts = split_url(value, "installer_url", message)
    if (
        parts.scheme not in {"http", "https"}
        or not parts.netloc
        or parts.query
        or parts.fragment
        or not _INSTALLER_URL_RE.fullmatch(value)
    ):
        raise InputError("installer_url", message)
    return value


def check_installer_token(value: str) -> str:
    if not INSTALLER_TOKEN_RE.fullmatch(value):
        raise InputError("installer_token", "must be 16-128 URL-safe characters")
    return value


def check_spec(spec: ProvisionerSpec) -> None:
    """Raise InputError naming the first field the renderer cannot take."""
    check_cluster_name(spec.cluster_name)
    if not spec.ssh_keys:
        raise InputError("ssh_keys", "at least one public key is required")
    check_flavour(spec.flavour)
    check_image(spec.image)
    check_size(spec.size)
    if bool(spec.installer_url) != bool(spec.installer_token):
        raise InputError("installer_token", "give the installer's URL and token together")
    if spec.installer_url:
        check_installer_url(spec.installer_url)
        check_installer_token(spec.installer_token)
    if spec.report_token:
        if not spec.installer_url:
            raise InputError("report_token", "give the installer's URL with it")
        if not REPORT_TOKEN_RE.fullmatch(spec.report_token):
            raise InputError("report_token", "must be 16-160 URL-safe characters and '.'")


_ENV: jinja2.Environment | None = None


def _env() -> jinja2.Environment:
    global _ENV
    if _ENV is None:
        _ENV = environment()
    return _ENV


# --- rendering and checking -----------------------------------------------------------


def _line_shape(line: str) -> str:
    """What a unit-file line contributes to structure: its section or its key."""
    return line.split("=", 1)[0] + "=" if "=" in line else line


def shape(value: Any) -> Any:
    """The structure of a parsed document with user-controlled leaves abstracted away."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    if isinstance(value, str) and "\n" in value:
        return ("text", tuple(_line_shape(line) for line in value.split("\n")))
    return type(value).__name__


def parse(text: str, flavour: str) -> Any:
    """Parse a document of ``flavour``; InvalidDocument when it does not parse."""
    language = check_flavour(flavour).language
    try:
        if language == "json":
            return json.loads(text)
        if not text.startswith("#cloud-config\n"):
            raise InvalidDocument("a cloud-config must start with '#cloud-config'")
        data = yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise InvalidDocument(f"{flavour} document does not parse: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidDocument(f"{flavour} document is not a mapping")
    return data


def check_size_limit(text: str) -> None:
    size = len(text.encode("utf-8"))
    if size > MAX_DOCUMENT_BYTES:
        raise DocumentTooLarge(
            f"document: {size} bytes, over the {MAX_DOCUMENT_BYTES // 1024} KiB that Azure "
            "custom data and DigitalOcean user data allow (fewer or shorter SSH keys?)"
        )


def _placeholder(spec: ProvisionerSpec) -> ProvisionerSpec:
    key = PublicKey(type="ssh-ed25519", blob=b"", comment="", bits=256)
    return replace(
        spec,
        cluster_name="x",
        image="x",
        size=1,
        ssh_keys=tuple(key for _ in spec.ssh_keys),
        installer_url="http://x" if spec.installer_url else "",
        installer_token="x" if spec.installer_token else "",
        report_token="x" if spec.report_token else "",
    )


def _render_text(spec: ProvisionerSpec) -> str:
    env = _env()
    token_file = f"{image.STATE_DIR}/{INSTALLER_TOKEN_NAME}"
    unit = env.get_template("provisioner.service.j2").render(
        spec=spec,
        user_id=image.USER_ID,
        state_dir=image.STATE_DIR,
        token_host_path=INSTALLER_TOKEN_HOST_PATH,
        token_file=token_file,
        report_host_path=REPORT_TOKEN_HOST_PATH,
        report_file=f"{image.STATE_DIR}/{REPORT_TOKEN_NAME}",
    )
    template = env.get_template(check_flavour(spec.flavour).template)
    return template.render(
        spec=spec,
        unit=unit,
        token_host_path=INSTALLER_TOKEN_HOST_PATH,
        token_data_url="data:," + quote(spec.installer_token, safe=""),
        report_host_path=REPORT_TOKEN_HOST_PATH,
        report_data_url="data:," + quote(spec.report_token, safe=""),
    )


def render_provisioner(spec: ProvisionerSpec) -> Document:
    """User-data for the provisioning machine: rendered, parsed, shape- and size-checked.

    Raises InputError (a field the user must fix), DocumentTooLarge, or InvalidDocument
    (a template bug). The external validators are separate: :func:`validate_with_tools`.
    """
    check_spec(spec)
    flavour = FLAVOURS[spec.flavour]
    text = _render_text(spec)
    check_size_limit(text)
    data = parse(text, spec.flavour)
    expected = shape(parse(_render_text(_placeholder(spec)), spec.flavour))
    if shape(data) != expected:
        raise InvalidDocument(f"{spec.flavour} document's structure differs from its template's")
    return Document(flavour=spec.flavour, text=text, content_type=flavour.content_type, data=data)
