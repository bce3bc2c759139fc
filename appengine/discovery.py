"""The etcd v2 discovery service, as etcd 3.4's --discovery speaks it."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("discovery", __name__)
