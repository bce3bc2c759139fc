"""The v2 discovery endpoints answer what etcd 3.4's discovery client expects."""

from __future__ import annotations

from flask.testing import FlaskClient

pytest_plugins = ("tests.appengine.discovery_fixtures",)


def test_smoke(discovery_client: FlaskClient) -> None:
    r = discovery_client.get("/new?size=3")
    print(r.status_code, r.text)
    path = r.text.split("localhost", 1)[1]
    for u in [path + "/_config/size", path, path + "/abc?prevExist=false"]:
        r = discovery_client.get(u)
        print(r.status_code, r.headers, r.text)
    r = discovery_client.put(path + "/abc?prevExist=false", data={"value": "n1=http://127.0.0.1:2380"})
    print(r.status_code, r.headers, r.text)
    r = discovery_client.put(path + "/abc?prevExist=false", data={"value": "n1=http://127.0.0.1:2380"})
    print(r.status_code, r.headers, r.text)
    r = discovery_client.get(path + "/abc?wait=true&waitIndex=2")
    print(r.status_code, r.headers, r.text)
    r = discovery_client.get(path + "?recursive=true&wait=true&waitIndex=3")
    print(r.status_code, r.headers, r.text)
    r = discovery_client.get(path + "?recursive=true")
    print(r.status_code, r.headers, r.text)
    assert 0
