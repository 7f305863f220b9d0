"""/models: search and filters, keyset pages forwards and back, visibility."""

from __future__ import annotations

import re

import pytest

from tests.registry.factories import make_model
from tests.views.conftest import HTMX


def names(response) -> list[str]:
    return re.findall(r'<a href="/models/([\w-]+)[^"]*"><strong>', response.content.decode())


@pytest.mark.django_db
def test_lists_only_the_users_own_models_newest_first(owner_client, catalogue):
    response = owner_client.get("/models")
    assert names(response) == ["tiny-llm", "empty-one", "walker", "pose-net", "yolo-small"]
    assert b"oscars-secret" not in response.content


@pytest.mark.django_db
def test_staff_see_every_owner_with_an_owner_qualified_link(staff_client, catalogue):
    html = staff_client.get("/models").content.decode()
    assert '<a href="/models/oscars-secret?owner=oscar">' in html


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query, expected",
    [
        ({"q": "yolo"}, ["yolo-small"]),
        ({"q": "fast"}, ["yolo-small"]),  # description
        ({"q": "robot"}, ["walker"]),  # tag
        ({"task": "pose"}, ["pose-net"]),
        ({"framework": "onnx"}, ["walker", "yolo-small"]),
        ({"tag": "vision"}, ["pose-net", "yolo-small"]),
        ({"production_ready": "1"}, ["yolo-small"]),
        ({"max_vram_mb": "4096"}, ["pose-net", "yolo-small"]),
        ({"max_vram_mb": "100"}, []),
        ({"q": "o", "task": "detector", "production_ready": "1"}, ["yolo-small"]),
    ],
)
def test_filters_narrow_the_list(owner_client, catalogue, query, expected):
    assert names(owner_client.get("/models", query)) == expected


@pytest.mark.django_db
def test_htmx_filter_request_gets_only_the_results_partial(owner_client, catalogue):
    response = owner_client.get("/models", {"q": "walker"}, **HTMX)
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="model-results">')
    assert "<nav" not in html and "model-filters" not in html
    assert names(response) == ["walker"]


@pytest.mark.django_db
def test_filters_update_as_the_user_types(owner_client):
    html = owner_client.get("/models").content.decode()
    # `changed` compares .value, which a checkbox keeps ("1") when unticked: the
    # checkbox refilters on `change` (tests/browser/test_model_filters.py ticks and unticks).
    assert (
        'hx-trigger="input changed delay:300ms, '
        'change target:input[type=checkbox] delay:300ms, submit"'
    ) in html
    assert 'hx-target="#model-results"' in html


@pytest.mark.django_db
def test_keyset_pages_go_forward_and_back_without_gaps(owner_client, owner):
    for index in range(45):
        make_model(owner, f"m-{index:02d}")
    first = owner_client.get("/models")
    page1 = names(first)
    assert page1 == [f"m-{i:02d}" for i in range(44, 24, -1)]
    next_url = re.search(r'id="next-page" href="([^"]+)"', first.content.decode())[1]
    second = owner_client.get(next_url.replace("&amp;", "&"))
    page2 = names(second)
    assert page2 == [f"m-{i:02d}" for i in range(24, 4, -1)]
    html2 = second.content.decode()
    next_url = re.search(r'id="next-page" href="([^"]+)"', html2)[1]
    third = owner_client.get(next_url.replace("&amp;", "&"))
    assert names(third) == [f"m-{i:02d}" for i in range(4, -1, -1)]
    assert 'id="next-page"' not in third.content.decode()
    prev_url = re.search(r'id="prev-page" href="([^"]+)"', third.content.decode())[1]
    assert names(owner_client.get(prev_url.replace("&amp;", "&"))) == page2
    prev_url = re.search(r'id="prev-page" href="([^"]+)"', html2)[1]
    back = owner_client.get(prev_url.replace("&amp;", "&"))
    assert names(back) == page1
    assert 'id="prev-page"' not in back.content.decode()


@pytest.mark.django_db
def test_pages_keep_the_filters(owner_client, owner):
    for index in range(25):
        make_model(owner, f"cam-{index:02d}", task="detector")
        make_model(owner, f"arm-{index:02d}", task="policy")
    first = owner_client.get("/models", {"task": "policy"}).content.decode()
    next_url = re.search(r'id="next-page" href="([^"]+)"', first)[1].replace("&amp;", "&")
    assert "task=policy" in next_url
    rest = names(owner_client.get(next_url))
    assert rest and all(name.startswith("arm-") for name in rest)


@pytest.mark.django_db
def test_a_forged_cursor_is_a_red_error_not_a_crash(owner_client, catalogue):
    response = owner_client.get("/models", {"cursor": "garbage!"})
    assert response.status_code == 200
    assert b'class="msg err"' in response.content
    assert b"is not a cursor" in response.content


@pytest.mark.django_db
@pytest.mark.parametrize(
    "ask, says",
    [
        ({"max_vram_mb": "abc"}, "max_vram_mb must be a whole number, not &#x27;abc&#x27;"),
        ({"max_vram_mb": "-1"}, "max_vram_mb must be 0 or more, not -1"),
        ({"max_params": "lots"}, "max_params"),
    ],
)
def test_an_unreadable_filter_is_a_red_error_not_ignored(owner_client, catalogue, ask, says):
    response = owner_client.get("/models", ask)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'class="msg err"' in html and says in html
    assert names(response) == []  # not the unfiltered list


@pytest.mark.django_db
def test_back_button_history_restore_gets_the_whole_page(owner_client, catalogue):
    html = owner_client.get(
        "/models", {"q": "walker"}, HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true"
    ).content.decode()
    assert "<nav" in html and 'id="model-filters"' in html
