"""URLs the standard library cannot split ('http://[x]': brackets around no IPv6 address)
are refused by the project's own errors, naming the field, never a bare ValueError.

Found by the user-data campaign (tests/vulcano/test_node_user_data_hostile.py).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from werkzeug.datastructures import MultiDict

from appengine.alerts import AlertSettingsError, read_destinations
from tests.vulcano.test_node_user_data_hostile import GOOD
from vulcano import cloudconfig, etcd
from vulcano.cloudconfig import InputError
from vulcano.nodeconfig import render_node

BAD = ["http://[reboot]", "http://[::1", "https://a]b/"]


@pytest.mark.parametrize("url", BAD)
@pytest.mark.parametrize("field", ["discovery_url", "agent_bundle_url", "etcd_endpoints"])
def test_node_urls(field: str, url: str) -> None:
    with pytest.raises(InputError) as refused:
        render_node(replace(GOOD, **{field: url}))
    assert refused.value.field == field


@pytest.mark.parametrize("url", BAD)
def test_the_installer_url(url: str) -> None:
    with pytest.raises(InputError) as refused:
        cloudconfig.check_installer_url(url)
    assert refused.value.field == "installer_url"


@pytest.mark.parametrize("url", BAD)
def test_etcd_endpoints(url: str) -> None:
    with pytest.raises(etcd.EndpointError, match="etcd endpoint"):
        etcd.parse_endpoints(url)


@pytest.mark.parametrize("url", BAD)
def test_alert_webhooks(url: str) -> None:
    with pytest.raises(AlertSettingsError, match="webhooks: "):
        read_destinations(MultiDict({"emails": "", "webhooks": url}))


def test_a_bad_etcd_image_is_named_as_etcd_image_not_image() -> None:
    with pytest.raises(InputError) as refused:
        render_node(replace(GOOD, flavour="flatcar", etcd_image="not an image"))
    assert refused.value.field == "etcd_image"


@pytest.mark.parametrize("data_dir", ["/;", "/var/lib/etcd dir", "/a\nExecStartPre=/bin/x"])
def test_a_data_dir_no_unit_line_can_hold_is_refused_by_name(data_dir: str) -> None:
    for flavour in ("cloud-init", "flatcar", "coreos-legacy"):
        with pytest.raises(InputError) as refused:
            render_node(replace(GOOD, flavour=flavour, data_dir=data_dir))
        assert refused.value.field == "data_dir"
