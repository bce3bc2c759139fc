"""Reading the install form: each field bounded, parsed and named in every error."""

from __future__ import annotations

import re
from collections.abc import Mapping

from werkzeug.datastructures import MultiDict

from vulcano import cloudconfig, sshkeys
from vulcano.errors import VulcanoError

# Per-field limits, checked before any parsing: past these the request is refused (413).
FIELD_MAX_CHARS: Mapping[str, int] = {
    "cluster_name": 256,
    "ssh_keys": 64 * 1024,
    "flavour": 64,
    "image": 1024,
    "size": 16,
}
FIELDS = tuple(FIELD_MAX_CHARS)
# Optional fields: absent means their default (forms and scripts from before them).
OPTIONAL_FIELDS: Mapping[str, tuple[int, str]] = {"panel_access": (32, "https")}
_SIZE_RE = re.compile(r"[0-9]{1,4}")


class FormError(VulcanoError, ValueError):
    """A form field we cannot accept: ``field`` names it, ``status`` is 400 or 413."""

    def __init__(self, field: str, message: str, status: int = 400) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status = status


def _one(form: MultiDict[str, str], field: str) -> str:
    values = form.getlist(field)
    if not values:
        raise FormError(field, "required")
    if len(values) > 1:
        raise FormError(field, "given more than once")
    value = values[0]
    limit = FIELD_MAX_CHARS[field]
    if len(value) > limit:
        raise FormError(field, f"longer than {limit} characters", status=413)
    return value


def read_install_form(form: MultiDict[str, str]) -> cloudconfig.ProvisionerSpec:
    """The ProvisionerSpec a submitted form asks for; FormError naming the first bad field."""
    raw = {field: _one(form, field) for field in FIELDS}
    try:
        cluster_name = cloudconfig.check_cluster_name(raw["cluster_name"].strip())
        try:
            keys = tuple(sshkeys.parse_keys(raw["ssh_keys"]))
        except sshkeys.SSHKeyError as exc:
            raise cloudconfig.InputError("ssh_keys", str(exc)) from None
        flavour = cloudconfig.check_flavour(raw["flavour"]).name
        image = cloudconfig.check_image(raw["image"].strip())
        size_text = raw["size"].strip()
        if not _SIZE_RE.fullmatch(size_text):
            raise cloudconfig.InputError("size", "must be a whole number")
        size = cloudconfig.check_size(int(size_text))
        panel_access = cloudconfig.check_panel_access(_optional(form, "panel_access"))
    except cloudconfig.InputError as exc:
        raise FormError(exc.field, exc.message) from None
    return cloudconfig.ProvisionerSpec(
        cluster_name=cluster_name,
        ssh_keys=keys,
        flavour=flavour,
        image=image,
        size=size,
        panel_access=panel_access,
    )


def _optional(form: MultiDict[str, str], field: str) -> str:
    limit, default = OPTIONAL_FIELDS[field]
    values = form.getlist(field)
    if len(values) > 1:
        raise FormError(field, "given more than once")
    if not values or not values[0].strip():
        return default
    if len(values[0]) > limit:
        raise FormError(field, f"longer than {limit} characters", status=413)
    return values[0].strip()
