"""Forms over HTTPS: the strict referrer check stays on, and the pages let it pass."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from tests.appengine.test_installs import answers, stored

HTTPS = "https://localhost"


def test_pages_send_their_referer_to_their_own_origin_only(client: FlaskClient) -> None:
    page = client.get("/", base_url=HTTPS)
    # Not no-referrer: that leaves every HTTPS POST without the Referer CSRF checks.
    assert page.headers["Referrer-Policy"] == "same-origin"


def test_a_post_over_https_from_our_own_page_is_accepted(client: FlaskClient) -> None:
    form = answers(client)
    response = client.post("/installs", data=form, base_url=HTTPS, headers={"Referer": HTTPS + "/"})
    assert response.status_code == 303, response.text


def test_a_post_over_https_without_a_referer_is_still_refused(
    client: FlaskClient, app: Flask
) -> None:
    response = client.post("/installs", data=answers(client), base_url=HTTPS)
    assert response.status_code == 400
    assert "csrf_token: The referrer header is missing." in response.text
    assert stored(app) == []


def test_a_post_over_https_from_another_site_is_refused(client: FlaskClient, app: Flask) -> None:
    response = client.post(
        "/installs",
        data=answers(client),
        base_url=HTTPS,
        headers={"Referer": "https://evil.example/"},
    )
    assert response.status_code == 400
    assert "csrf_token: The referrer does not match the host." in response.text
    assert stored(app) == []
