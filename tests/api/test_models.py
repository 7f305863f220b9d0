from __future__ import annotations

import pytest

from modelmgr.models import AuditEvent, RegisteredModel, Slot
from tests.conftest import make_token
from tests.registry.factories import make_model, make_version

pytestmark = pytest.mark.django_db

URL = "/api/v1/models"


def post(api, url, data):
    return api.post(url, data, content_type="application/json")


def patch(api, url, data):
    return api.patch(url, data, content_type="application/json")


def test_create_returns_the_model(api, owner):
    response = post(
        api,
        URL,
        {"name": "yolo-s", "task": "detector", "tags": ["vision"], "description": "small detector"},
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["name"] == "yolo-s" and body["owner"] == "olivia"
    assert body["task"] == "detector" and body["tags"] == ["vision"]
    assert body["latest_version"] is None and body["version_count"] == 0
    event = AuditEvent.objects.get(action="model.create")
    assert event.actor_label == "olivia (token robot)"


def test_create_duplicate_is_409(api, owner):
    post(api, URL, {"name": "yolo-s"})
    response = post(api, URL, {"name": "yolo-s"})
    assert response.status_code == 409
    assert "already has a model named 'yolo-s'" in response.json()["detail"]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"name": "bad name"}, "must be a slug"),
        ({"name": "ok", "task": "juggler"}, "task 'juggler'"),
        ({"task": "detector"}, "name: Field required"),
        ({"name": "ok", "tags": "not-a-list"}, "tags: Input should be a valid list"),
    ],
)
def test_create_with_bad_input_is_422_with_a_detail_and_stores_nothing(api, payload, message):
    response = post(api, URL, payload)
    assert response.status_code == 422
    assert message in response.json()["detail"]
    assert not RegisteredModel.objects.exists()


def test_malformed_json_body_is_a_clear_error(api):
    response = api.post(URL, "{not json", content_type="application/json")
    assert response.status_code in (400, 422)
    assert response.json()["detail"]


def test_get_shows_latest_available_version_and_count(api, owner):
    model = make_model(owner, "det")
    make_version(model, "1")
    make_version(model, "2")
    make_version(model, "3", status="error")
    body = api.get(f"{URL}/det").json()
    assert body["latest_version"] == "2" and body["version_count"] == 3


def test_get_unknown_model_is_404(api):
    response = api.get(f"{URL}/nothing")
    assert response.status_code == 404
    assert response.json()["detail"] == "model 'nothing' not found"


def test_patch_changes_fields_and_audits_before_after(api, owner):
    make_model(owner, "det", task="detector", tags=("a",))
    response = patch(api, f"{URL}/det", {"task": "pose", "tags": ["b", "c"], "framework": "onnx"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["task"] == "pose" and body["tags"] == ["b", "c"] and body["framework"] == "onnx"
    event = AuditEvent.objects.get(action="model.update")
    assert event.before["tags"] == ["a"] and event.after["tags"] == ["b", "c"]


def test_patch_leaves_fields_not_sent_alone(api, owner):
    make_model(owner, "det", task="detector", description="keep me", tags=("a",))
    patch(api, f"{URL}/det", {"task": "pose"})
    model = RegisteredModel.objects.get(name="det")
    assert model.description == "keep me" and list(model.tags.values_list("name", flat=True)) == [
        "a"
    ]


def test_patch_with_bad_framework_is_422(api, owner):
    make_model(owner, "det")
    response = patch(api, f"{URL}/det", {"framework": "caffe"})
    assert response.status_code == 422 and "framework 'caffe'" in response.json()["detail"]


def test_delete_removes_model_and_audits(api, owner):
    make_version(make_model(owner, "det"), "1")
    response = api.delete(f"{URL}/det")
    assert response.status_code == 204
    assert not RegisteredModel.objects.exists()
    assert AuditEvent.objects.get(action="model.delete").before["versions"] == ["1"]


def test_delete_of_a_served_model_is_409_naming_the_slot(api, owner):
    version = make_version(make_model(owner, "det"), "1")
    Slot.objects.create(name="front-camera", active_version=version)
    response = api.delete(f"{URL}/det")
    assert response.status_code == 409
    assert "front-camera" in response.json()["detail"]
    assert RegisteredModel.objects.filter(name="det").exists()


def list_names(api, **params) -> list[str]:
    response = api.get(URL, params)
    assert response.status_code == 200, response.content
    return [item["name"] for item in response.json()["items"]]


def test_list_filters_by_query_params(api, owner):
    make_version(
        make_model(owner, "det", task="detector", tags=("vision",)),
        "1",
        framework="onnx",
        production_ready=True,
        min_vram_mb=1000,
    )
    make_version(
        make_model(owner, "pol", task="policy", description="walking policy"),
        "1",
        status="archived",
        min_vram_mb=9000,
    )
    assert list_names(api, q="walking") == ["pol"]
    assert list_names(api, task="detector") == ["det"]
    assert list_names(api, framework="onnx") == ["det"]
    assert list_names(api, tag="vision") == ["det"]
    assert list_names(api, owner="olivia") == ["pol", "det"]
    assert list_names(api, status="archived") == ["pol"]
    assert list_names(api, production_ready="true") == ["det"]
    assert list_names(api, max_vram_mb=4096) == ["det"]
    for bad, words in (("-1", "max_vram_mb must be 0 or more"), ("abc", "max_vram_mb")):
        response = api.get(URL, {"max_vram_mb": bad})
        assert response.status_code == 422 and words in str(response.json()["detail"])


def test_list_pages_with_cursor_without_duplicates_or_gaps(api, owner):
    for i in range(5):
        make_model(owner, f"m{i}")
    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        body = api.get(URL, params).json()
        seen += [item["name"] for item in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == ["m4", "m3", "m2", "m1", "m0"]


def test_list_with_forged_cursor_is_400(api):
    response = api.get(URL, {"cursor": "nope"})
    assert response.status_code == 400 and "not a cursor" in response.json()["detail"]


def test_list_limit_over_the_maximum_is_422(api):
    response = api.get(URL, {"limit": 100000})
    assert response.status_code == 422 and "limit" in response.json()["detail"]


def test_list_shows_only_own_models(client, owner, other_user):
    make_model(owner, "mine")
    make_model(other_user, "theirs")
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {make_token(other_user)}"
    assert list_names(client) == ["theirs"]


def test_staff_must_pass_owner_for_ambiguous_names(client, owner, other_user, staff):
    make_model(owner, "det")
    make_model(other_user, "det")
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {make_token(staff)}"
    response = client.get(f"{URL}/det")
    assert response.status_code == 409 and "owner" in response.json()["detail"]
    assert client.get(f"{URL}/det", {"owner": "oscar"}).json()["owner"] == "oscar"
