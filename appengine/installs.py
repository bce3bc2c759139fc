"""Install pages: the form, the generated document, the permalink."""

from __future__ import annotations

import json
import logging
import shlex
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from appengine.forms import FormError, read_install_form
from appengine.models import Install
from vulcano import cloudconfig, image, validators

log = logging.getLogger(__name__)

bp = Blueprint("installs", __name__)

# The image `nox -s image` builds and publishes (vulcano/image.py).
DEFAULT_IMAGE = image.REFERENCE
NO_SUCH_INSTALL = "token: no install has this token (it may have been deleted)"
_EXTENSIONS = {"yaml": "yaml", "json": "ign"}


def _form_page(values: Any = None, error: FormError | None = None, status: int = 200) -> Any:
    return (
        render_template(
            "index.html",
            values=values or {},
            error=error,
            flavours=cloudconfig.FLAVOURS.values(),
            default_image=DEFAULT_IMAGE,
            max_size=cloudconfig.CLUSTER_SIZE_MAX,
        ),
        status,
    )


@bp.get("/")
def index() -> Any:
    """The form that turns a few answers into user-data."""
    return _form_page()


@bp.post("/installs")
def create() -> Any:
    """Generate the document, check it, store the install, show it."""
    try:
        spec = read_install_form(request.form)
        document = cloudconfig.render_provisioner(spec)
    except FormError as exc:
        return _form_page(request.form, exc, exc.status)
    except cloudconfig.DocumentTooLarge as exc:
        return _form_page(request.form, FormError("document", str(exc), 413), 413)
    required = current_app.config["VALIDATE_WITH_TOOLS"]
    if required:
        validators.validate_with_tools(document, required=required is True)
    _, token = Install.create(
        cluster_name=spec.cluster_name,
        ssh_keys=[key.line for key in spec.ssh_keys],
        flavour=spec.flavour,
        image=spec.image,
        size=spec.size,
        document=document.text,
        content_type=document.content_type,
    )
    log.info("stored a %s install for cluster %s", spec.flavour, spec.cluster_name)
    return redirect(url_for("installs.show", token=token), code=303)


def _install_or_404(token: str) -> Install:
    install = Install.get_by_token(token)
    if install is None:
        abort(404, NO_SUCH_INSTALL)
    return install


def commands(install: Install, token: str) -> dict[str, str]:
    """How to use the permalink: a one-line command and the user-data that includes it."""
    url = url_for("installs.cloud_config", token=token, _external=True)
    quoted = shlex.quote(url)
    if install.flavour == "flatcar":
        return {
            "command": f"curl -fsSL {quoted} -o ignition.json && "
            "sudo flatcar-install -d /dev/sda -i ignition.json",
            "include": json.dumps(
                {"ignition": {"version": "3.3.0", "config": {"replace": {"source": url}}}},
                indent=2,
            ),
        }
    if install.flavour == "coreos-legacy":
        return {
            "command": f"sudo coreos-cloudinit --from-url={quoted}",
            "include": f"#include\n{url}\n",
        }
    return {
        "command": f"curl -fsSL {quoted} | sudo tee /etc/cloud/cloud.cfg.d/99-vulcano.cfg "
        ">/dev/null && sudo cloud-init clean --reboot",
        "include": f"#include\n{url}\n",
    }


@bp.get("/installs/<token>")
def show(token: str) -> Any:
    """An install: its answers, its document, and how to use its permalink."""
    install = _install_or_404(token)
    return render_template(
        "install.html",
        install=install,
        token=token,
        flavour=cloudconfig.FLAVOURS[install.flavour],
        usage=commands(install, token),
    )


@bp.post("/installs/<token>/delete")
def delete(token: str) -> BaseResponse:
    """Forget an install; its permalink answers 404 from now on."""
    if not Install.delete_by_token(token):
        abort(404, NO_SUCH_INSTALL)
    log.info("deleted an install")
    flash("The install was deleted; its permalink no longer answers.")
    return redirect(url_for("installs.index"), code=303)


@bp.post("/lookup")
def lookup() -> Any:
    """Come back with a token: go to its install."""
    token = request.form.get("token", "").strip()
    if Install.get_by_token(token) is None:
        abort(404, NO_SUCH_INSTALL)
    return redirect(url_for("installs.show", token=token), code=303)


@bp.get("/cloud-config/<token>")
def cloud_config(token: str) -> Response:
    """The permalink: the stored document, as the machine fetches it."""
    install = _install_or_404(token)
    response = Response(install.document, content_type=install.content_type)
    if request.args.get("download"):
        flavour = cloudconfig.FLAVOURS[install.flavour]
        name = f"vulcano-{install.cluster_name}.{_EXTENSIONS[flavour.language]}"
        response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@bp.after_app_request
def keep_tokens_private(response: Response) -> Response:
    """Pages and permalinks carry tokens: never cached by others, never in a Referer."""
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if request.endpoint in {"installs.show", "installs.cloud_config"}:
        response.headers["Cache-Control"] = "private, no-store"
    return response
