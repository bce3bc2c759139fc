"""The panel's own log (gunicorn's access and error lines, the app's) under real
`vulcano serve`: a node's join token in a URL's query, an enrolment token in a header,
the admin password in a login form and a session cookie never reach it."""

from __future__ import annotations

from pathlib import Path

import requests

from tests.container.panel.served import login, served_panel

PASSWORD = "log-test-password-5dd0e1"
JOIN_TOKEN = "jointoken-4f1c9a7be2d84d03a5c6"
ENROL_TOKEN = "enroltoken-9b2e61f0c8a34e7d"


def test_no_token_password_or_cookie_reaches_the_panels_log(tmp_path: Path) -> None:
    state, log = tmp_path / "state", tmp_path / "serve.log"
    env = {"VULCANO_ADMIN_PASSWORD": PASSWORD}
    with served_panel(state, log, env, https=True) as panel:
        verify = panel.verify
        answer = requests.get(
            f"{panel.url}/join/prod/3", params={"token": JOIN_TOKEN}, timeout=10, verify=verify
        )
        assert answer.status_code == 403  # no such cluster: refused, and still logged
        answer = requests.post(
            f"{panel.url}/join/prod/1/certificate",
            params={"address": "192.0.2.7"},
            headers={"Authorization": f"Bearer {ENROL_TOKEN}"},
            data=b"not a CSR",
            timeout=10,
            verify=verify,
        )
        assert answer.status_code == 403
        session = login(panel.url, PASSWORD, verify=verify)
        assert session.get(panel.url + "/clusters", timeout=10).status_code == 200
        cookie = next(c.value for c in session.cookies if c.name == "vulcano_panel")
        text = panel.log()
    # the requests were logged (so the check below looks at a log that has them)
    assert '"GET /join/prod/3 HTTP/1.1" 403' in text, text
    assert '"POST /join/prod/1/certificate HTTP/1.1" 403' in text, text
    assert '"POST /login HTTP/1.1" 302' in text, text
    for secret in (JOIN_TOKEN, ENROL_TOKEN, PASSWORD, cookie):
        assert secret not in text, f"{secret[:8]}… is in the panel's log"
