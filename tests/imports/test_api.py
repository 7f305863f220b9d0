"""/api/v1/imports: create, list, show, cancel, retry, delete; visibility and errors."""

from __future__ import annotations

import pytest

from modelmgr.imports.runner import import_job_run
from modelmgr.models import DownloadJob
from tests.conftest import make_token

pytestmark = pytest.mark.django_db

PATH = "/models/tiny.onnx"
BASE = "/api/v1/imports"


def post(client, url: str, data: dict | None = None, token: str | None = None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return client.post(url, data or {}, content_type="application/json", **headers)


def test_import_is_queued_then_shows_the_version_it_created(api, server, onnx_data):
    server.add(PATH, onnx_data)

    created = post(
        api,
        BASE,
        {"url": server.url(PATH), "model": "detector-a", "version": "1.0", "task": "detector"},
    )

    assert created.status_code == 202, created.content
    body = created.json()
    assert (body["state"], body["model"], body["version"], body["owner"]) == (
        "queued",
        "detector-a",
        "1.0",
        "olivia",
    )
    assert body["can_cancel"] is True and body["result"] is None

    import_job_run(body["id"])
    shown = api.get(f"{BASE}/{body['id']}").json()
    assert shown["state"] == "done"
    assert shown["result"] == "detector-a@1.0"
    assert shown["progress"] == 1.0
    assert shown["bytes_total"] == len(onnx_data)


def test_refused_host_is_a_422_naming_the_reason(api, import_settings):
    import_settings.MODELMGR_IMPORT_ALLOWED_PRIVATE_HOSTS = []

    response = post(api, BASE, {"url": "http://169.254.169.254/latest/meta-data/", "model": "m"})

    assert response.status_code == 422
    assert "metadata" in response.json()["detail"]
    assert DownloadJob.objects.count() == 0


def test_non_http_url_is_a_400(api, import_settings):
    response = post(api, BASE, {"url": "file:///etc/passwd", "model": "m"})

    assert response.status_code == 400
    assert "scheme 'file' is not allowed" in response.json()["detail"]


def test_missing_fields_are_a_422(api, import_settings):
    response = post(api, BASE, {"model": "m"})

    assert response.status_code == 422
    assert "url" in response.json()["detail"]


def test_owner_sees_own_imports_and_staff_sees_all(client, server, owner, other_user, staff):
    mine = make_token(owner)
    theirs = make_token(other_user)
    admin = make_token(staff)
    own_job = post(client, BASE, {"url": server.url("/a.onnx"), "model": "a"}, mine).json()
    other_job = post(client, BASE, {"url": server.url("/b.onnx"), "model": "b"}, theirs).json()

    def ids(token: str) -> list[int]:
        response = client.get(BASE, HTTP_AUTHORIZATION=f"Bearer {token}")
        return [item["id"] for item in response.json()["items"]]

    assert ids(mine) == [own_job["id"]]
    assert ids(admin) == [other_job["id"], own_job["id"]]
    hidden = client.get(f"{BASE}/{other_job['id']}", HTTP_AUTHORIZATION=f"Bearer {mine}")
    assert hidden.status_code == 404
    cancel = post(client, f"{BASE}/{other_job['id']}/cancel", token=mine)
    assert cancel.status_code == 404
    assert DownloadJob.objects.get(pk=other_job["id"]).state == "queued"


def test_list_filters_by_state_and_pages(api, server, owner):
    jobs = [
        post(api, BASE, {"url": server.url(f"/m{i}.onnx"), "model": f"m{i}"}).json()
        for i in range(3)
    ]
    post(api, f"{BASE}/{jobs[0]['id']}/cancel")

    cancelled = api.get(BASE, {"state": "cancelled"}).json()
    assert [item["id"] for item in cancelled["items"]] == [jobs[0]["id"]]
    first = api.get(BASE, {"limit": 2}).json()
    second = api.get(BASE, {"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [i["id"] for i in first["items"] + second["items"]] == [j["id"] for j in jobs[::-1]]
    assert api.get(BASE, {"state": "sleeping"}).status_code == 422


def test_cancel_retry_and_delete(api, server, onnx_data):
    server.add(PATH, onnx_data)
    job = post(api, BASE, {"url": server.url(PATH), "model": "m"}).json()

    cancelled = post(api, f"{BASE}/{job['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert cancelled.json()["can_retry"] is True
    again = post(api, f"{BASE}/{job['id']}/cancel")
    assert again.status_code == 409 and "only a queued or running" in again.json()["detail"]

    retried = post(api, f"{BASE}/{job['id']}/retry")
    assert retried.status_code == 200 and retried.json()["state"] == "queued"
    assert api.delete(f"{BASE}/{job['id']}").status_code == 409

    post(api, f"{BASE}/{job['id']}/cancel")
    assert api.delete(f"{BASE}/{job['id']}").status_code == 204
    assert api.get(f"{BASE}/{job['id']}").status_code == 404


def test_read_only_token_cannot_start_an_import(client, read_only_token, server):
    response = post(client, BASE, {"url": server.url(PATH), "model": "m"}, read_only_token)

    assert response.status_code == 403
    assert "write" in response.json()["detail"]
    assert DownloadJob.objects.count() == 0


def test_anonymous_requests_are_refused(client):
    assert client.get(BASE).status_code == 401
