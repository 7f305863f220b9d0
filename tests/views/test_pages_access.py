"""Every page needs a login, carries the CSRF token for htmx, and renders for a user."""

from __future__ import annotations

import re

import pytest

PAGES = ["/settings", "/models", "/models/upload", "/imports", "/status", "/audit"]


@pytest.mark.django_db
@pytest.mark.parametrize("url", PAGES + ["/models/some-model"])
def test_anonymous_visitor_is_sent_to_the_login_page(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(f"/login/?next={url}")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url", ["/settings/apply", "/imports", "/models/upload", "/models/x/versions/1/archive"]
)
def test_anonymous_post_changes_nothing_and_is_sent_to_the_login_page(client, url):
    response = client.post(url, {})
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


@pytest.mark.django_db
def test_login_page_logs_in_and_lands_on_settings(client, owner):
    page = client.get("/login/")
    assert page.status_code == 200
    assert b'name="csrfmiddlewaretoken"' in page.content
    response = client.post("/login/", {"username": "olivia", "password": "pw-olivia"})
    assert response.status_code == 302
    assert response["Location"] == "/settings"


@pytest.mark.django_db
def test_wrong_password_shows_a_red_error(client, owner):
    response = client.post("/login/", {"username": "olivia", "password": "nope"})
    assert response.status_code == 200
    assert b'class="msg err"' in response.content


@pytest.mark.django_db
def test_root_redirects_to_settings(owner_client):
    assert owner_client.get("/")["Location"] == "/settings"


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/models", "/models/upload", "/imports", "/audit"])
def test_every_page_sends_the_csrf_token_in_htmx_headers(owner_client, url):
    html = owner_client.get(url).content.decode()
    match = re.search(r"hx-headers='\{\"X-CSRFToken\": \"([A-Za-z0-9]+)\"\}'", html)
    assert match, "the <body> must carry the CSRF token for htmx requests"
    assert 'ws-connect="/ws/events/"' in html
    assert "/static/django_htmx/htmx-2.min.js" in html
    assert "/static/django_htmx/ext/hx-ws-2.min.js" in html


@pytest.mark.django_db
def test_forms_posted_without_the_csrf_token_are_refused(owner, client):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(owner)
    response = strict.post("/imports", {"url": "https://example.org/m.onnx", "name": "m"})
    assert response.status_code == 403


@pytest.mark.django_db
def test_logout_needs_a_post_and_ends_the_session(owner_client):
    response = owner_client.post("/logout/")
    assert response.status_code == 302
    assert owner_client.get("/models").status_code == 302


def test_favicon_is_served_to_anyone(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    assert response.content.startswith(b"<svg")
