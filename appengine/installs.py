"""Install pages: the form, the generated document, the permalink."""

from __future__ import annotations

import dataclasses
import json
import logging
import shlex
from datetime import timedelta
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

from appengine import alerts_engine, clouds, heartbeat_models, images, limits, reporting
from appengine.discovery_models import delete_for_install
from appengine.forms import FormError, read_install_form
from appengine.models import (
    Install,
    new_token,
    provisioner_token,
    read_token,
    token_key_name,
)
from vulcano import cloudconfig, validators

log = logging.getLogger(__name__)

bp = Blueprint("installs", __name__)

NO_SUCH_INSTALL = "token: no install has this token (it may have been deleted)"
EXPIRED = "token: this install expired on {date} (installs are kept {days} days)"
_EXTENSIONS = {"yaml": "yaml", "json": "ign"}


def _form_page(values: Any = None, error: FormError | None = None, status: int = 200) -> Any:
    return (
        render_template(
            "index.html",
            values=values or {},
            error=error,
            flavours=cloudconfig.FLAVOURS.values(),
            default_image=images.offered(current_app.config),
            digest=current_app.config.get("PROVISIONER_DIGEST"),
            max_size=cloudconfig.CLUSTER_SIZE_MAX,
            panel_access=cloudconfig.PANEL_ACCESS,
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
    # The token first: the document carries the provisioner token derived from it, and
    # the reporting secret names the install it makes.
    token = new_token()
    report_token, report_hash = reporting.new_reporting_secret(token_key_name(read_token(token)))
    try:
        spec = read_install_form(request.form)
        spec = dataclasses.replace(
            spec,
            image=images.pinned(spec.image, current_app.config),
            installer_url=installer_url(),
            installer_token=provisioner_token(read_token(token)),
            report_token=report_token,
        )
        document = cloudconfig.render_provisioner(spec)
    except FormError as exc:
        return _form_page(request.form, exc, exc.status)
    except cloudconfig.DocumentTooLarge as exc:
        return _form_page(request.form, FormError("document", str(exc), 413), 413)
    # After the form's checks (a refused answer counts for nothing), before the costly
    # validators (a client past its quota does not get them run).
    limits.INSTALLS.take()
    required = current_app.config["VALIDATE_WITH_TOOLS"]
    if required:
        validators.validate_with_tools(document, required=required is True)
    Install.create(
        max_age=timedelta(days=limits.limit("INSTALL_MAX_AGE_DAYS")),
        token=token,
        cluster_name=spec.cluster_name,
        ssh_keys=[key.line for key in spec.ssh_keys],
        flavour=spec.flavour,
        image=spec.image,
        size=spec.size,
        document=document.text,
        content_type=document.content_type,
        report_hash=report_hash,
    )
    log.info("stored a %s install for cluster %s", spec.flavour, spec.cluster_name)
    return redirect(url_for("installs.show", token=token), code=303)


def installer_url() -> str:
    """This installer's root URL as the request reached it (the container calls it back)."""
    return url_for("installs.index", _external=True).rstrip("/")


def usable(install: Install | None) -> Install:
    """``install`` when it is there and not expired; else abort with 404 or 410."""
    if install is None:
        abort(404, NO_SUCH_INSTALL)
    if install.expired:
        days = limits.limit("INSTALL_MAX_AGE_DAYS")
        abort(410, EXPIRED.format(date=install.expires.strftime("%Y-%m-%d"), days=days))
    return install


def _install_or_404(token: str) -> Install:
    return usable(Install.get_by_token(token))


def commands(install: Install, permalink_token: str) -> dict[str, str]:
    """How to use the permalink: a one-line command and the user-data that includes it."""
    url = url_for("installs.cloud_config", token=permalink_token, _external=True)
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
    """An install: its answers, its document, and how to use its permalink.

    ``token`` is the manage token; the permalink's read token is derived from it again.
    """
    install = _install_or_404(token)
    permalink_token = read_token(token)
    permalink = url_for("installs.cloud_config", token=permalink_token, _external=True)
    return render_template(
        "install.html",
        install=install,
        token=token,
        permalink_token=permalink_token,
        flavour=cloudconfig.FLAVOURS[install.flavour],
        usage=commands(install, permalink_token),
        status_url=url_for("status.show", token=permalink_token),
        filename=document_filename(install),
        clouds=clouds.commands(
            permalink, document_filename(install), install.cluster_name, install.flavour
        ),
    )


def document_filename(install: Install) -> str:
    """The file name a download of the install's document gets (and the clouds read)."""
    flavour = cloudconfig.FLAVOURS[install.flavour]
    return f"vulcano-{install.cluster_name}.{_EXTENSIONS[flavour.language]}"


@bp.post("/installs/<token>/delete")
def delete(token: str) -> BaseResponse:
    """Forget an install; its permalink and its discovery URLs answer 404 from now on.

    The discovery tokens stop answering with the install (each lookup checks it is still
    there); their entities are deleted here too, and by the cron if this is cut short.
    """
    install = Install.get_by_token(token)
    if install is None or not Install.delete_by_token(token):
        abort(404, NO_SUCH_INSTALL)
    removed = delete_for_install(install.key)
    heartbeat_models.delete_for_install(install.key)
    alerts_engine.delete_for_install(install.key)
    log.info("deleted an install and its %d discovery tokens", removed)
    flash("The install was deleted; its permalink no longer answers.")
    return redirect(url_for("installs.index"), code=303)


@bp.post("/lookup")
def lookup() -> Any:
    """Come back with a token: go to its install."""
    token = request.form.get("token", "").strip()
    _install_or_404(token)
    return redirect(url_for("installs.show", token=token), code=303)


@bp.get("/cloud-config/<token>")
def cloud_config(token: str) -> Response:
    """The permalink: the stored document, as the machine fetches it, by its read token."""
    install = usable(Install.get_by_read_token(token))
    response = Response(install.document, content_type=install.content_type)
    if request.args.get("download"):
        name = document_filename(install)
        response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
