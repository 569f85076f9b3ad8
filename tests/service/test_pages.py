"""The pages' plumbing: the front door, CSRF on every form, the session secret, the vendored
chart library's checksum, Swagger UI without outside requests."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest

from .helpers import QUICK, XOR, train

VENDOR = Path(__file__).resolve().parents[2] / "service/pages/static/vendor/uplot-1.6.32"
# sha256 of the files of the npm package uplot@1.6.32 (dist/ and its LICENSE)
VENDORED = {
    "uPlot.iife.min.js": "19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f",
    "uPlot.min.css": "df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04",
    "LICENSE": "8f989229699b4fe2f1a0432d0e9edc338a8a911e250e2d1b01ecd770a5f5b1bd",
}


def test_vendored_chart_library_is_the_released_one() -> None:
    assert sorted(p.name for p in VENDOR.iterdir()) == sorted(VENDORED)
    for name, digest in VENDORED.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name
    assert "MIT" in (VENDOR / "LICENSE").read_text()


def csrf(client: Any, url: str) -> str:
    page = client.get(url).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def sign_in(client: Any, key: str) -> None:
    resp = client.post("/signin", data={"api_key": key, "csrf_token": csrf(client, "/signin")})
    assert resp.status_code == 302


def test_front_door_goes_to_sign_in_then_the_dashboard(client: Any, key: str) -> None:
    resp = client.get("/")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/signin")
    assert 'href="/docs"' in client.get("/signin").get_data(as_text=True)
    assert client.get("/jobs").headers["Location"].startswith("/signin?next=/jobs")
    sign_in(client, key)
    assert client.get("/").headers["Location"].endswith("/jobs")
    page = client.get("/jobs")
    assert page.status_code == 200 and "Content-Security-Policy" in page.headers


def test_forms_need_their_csrf_token(app: Any, client: Any, auth: dict[str, str],
                                     key: str) -> None:
    assert client.post("/signin", data={"api_key": key}).status_code == 400
    sign_in(client, key)
    job = train(app, client, auth, XOR, training={**QUICK, "epochs": 3})
    for url in (f"/jobs/{job['id']}/cancel", f"/models/{job['model_id']}", "/signout"):
        resp = client.post(url, data={"rows": "0,0"})
        assert resp.status_code == 400, url
        assert "Reload the page" in resp.get_data(as_text=True)
    token = csrf(client, f"/models/{job['model_id']}")
    resp = client.post(f"/models/{job['model_id']}", data={"rows": "0,1\n1,1",
                                                             "csrf_token": token})
    assert resp.status_code == 200 and 'id="predictions"' in resp.get_data(as_text=True)
    resp = client.post(f"/models/{job['model_id']}", data={"rows": "0,x", "csrf_token": token})
    assert resp.status_code == 422 and "not all numbers" in resp.get_data(as_text=True)


def test_sign_in_rejects_bad_keys_and_foreign_redirects(client: Any, key: str) -> None:
    resp = client.post("/signin", data={"api_key": "bp_nope", "csrf_token": csrf(client,
                                                                                "/signin")})
    assert resp.status_code == 401 and "not valid" in resp.get_data(as_text=True)
    resp = client.post("/signin", data={"api_key": key, "next": "//evil.example/x",
                                        "csrf_token": csrf(client, "/signin")})
    assert resp.headers["Location"] == "/jobs"


def test_default_secret_is_refused_outside_development(database_url: str,
                                                       tmp_path: Path) -> None:
    from service.app import create_app

    for secret in ("", "change-me", "short"):
        with pytest.raises(RuntimeError, match="SECRET_KEY"):
            create_app({"data_dir": tmp_path, "database_url": database_url,
                        "environment": "production", "secret_key": secret})
    app = create_app({"data_dir": tmp_path, "database_url": database_url,
                      "environment": "production", "secret_key": "x" * 32})
    assert app.config["SECRET_KEY"] == "x" * 32
    dev = create_app({"data_dir": tmp_path, "database_url": database_url})
    assert dev.config["SECRET_KEY"] == (tmp_path / "secret-key").read_text().strip()
    assert len(dev.config["SECRET_KEY"]) >= 32


def test_swagger_ui_asks_no_outside_validator(client: Any) -> None:
    page = client.get("/docs/swagger").get_data(as_text=True)
    assert '"validatorUrl": null' in page or '"validatorUrl":null' in page
    assert "https://" not in page and "http://" not in page


def test_a_request_without_the_cookie_builds_no_session_serializer(
        app: Any, client: Any, key: str, auth: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []
    interface = app.session_interface
    real = interface.get_signing_serializer

    def counting(flask_app: Any) -> Any:
        built.append(flask_app.name)
        return real(flask_app)

    monkeypatch.setattr(interface, "get_signing_serializer", counting)
    assert client.get("/v1/models", headers=auth).status_code == 200
    assert client.get("/healthz").status_code == 200
    assert built == []  # API calls and probes carry no session cookie
    sign_in(client, key)  # the signed cookie still works: set, then read back
    assert client.get("/jobs").status_code == 200
    assert len(built) >= 2
    client.delete_cookie("bp_session")
    assert client.get("/jobs").status_code == 302
