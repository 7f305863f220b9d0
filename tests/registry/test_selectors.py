from __future__ import annotations

import pytest

from modelmgr.exceptions import NotFound, VersionConflict
from modelmgr.refs import BadReference
from modelmgr.registry.pagination import BadCursor
from modelmgr.registry.selectors import model_get, model_list, version_resolve
from tests.registry.factories import make_model, make_version

pytestmark = pytest.mark.django_db


def names(page) -> list[str]:
    return [m.name for m in page.items]


def test_owner_sees_only_own_models_and_staff_sees_all(owner, other_user, staff):
    make_model(owner, "mine")
    make_model(other_user, "theirs")
    assert names(model_list(user=owner)) == ["mine"]
    assert names(model_list(user=other_user)) == ["theirs"]
    assert names(model_list(user=staff)) == ["theirs", "mine"]


def test_text_query_matches_name_description_and_tags(owner):
    make_model(owner, "yolo-small")
    make_model(owner, "walker", description="A YOLO-style policy")
    make_model(owner, "pose-net", tags=("yolo-family",))
    make_model(owner, "unrelated", description="nothing here")
    assert sorted(names(model_list(user=owner, q="yolo"))) == ["pose-net", "walker", "yolo-small"]


def test_task_filter(owner):
    make_model(owner, "det", task="detector")
    make_model(owner, "pol", task="policy")
    assert names(model_list(user=owner, task="policy")) == ["pol"]


def test_framework_filter_matches_model_or_any_version(owner):
    make_model(owner, "declared", framework="onnx")
    detected = make_model(owner, "detected")
    make_version(detected, framework="onnx")
    other = make_model(owner, "other")
    make_version(other, framework="safetensors")
    assert sorted(names(model_list(user=owner, framework="onnx"))) == ["declared", "detected"]


def test_tag_filter_is_exact(owner):
    make_model(owner, "a", tags=("gpu",))
    make_model(owner, "b", tags=("gpu-heavy",))
    assert names(model_list(user=owner, tag="gpu")) == ["a"]


def test_owner_filter_for_staff(owner, other_user, staff):
    make_model(owner, "a")
    make_model(other_user, "b")
    assert names(model_list(user=staff, owner="oscar")) == ["b"]


def test_status_filter_matches_models_with_some_version_in_that_status(owner):
    archived = make_model(owner, "archived-one")
    make_version(archived, "1", status="archived")
    mixed = make_model(owner, "mixed")
    make_version(mixed, "1", status="error")
    make_version(mixed, "2", status="archived")
    make_model(owner, "no-versions")
    assert sorted(names(model_list(user=owner, status="archived"))) == ["archived-one", "mixed"]
    assert names(model_list(user=owner, status="error")) == ["mixed"]


def test_production_ready_filter(owner):
    ready = make_model(owner, "ready")
    make_version(ready, production_ready=True)
    draft = make_model(owner, "draft")
    make_version(draft, production_ready=False)
    assert names(model_list(user=owner, production_ready=True)) == ["ready"]
    assert names(model_list(user=owner, production_ready=False)) == ["draft"]


def test_max_vram_filter_excludes_versions_of_unknown_need(owner):
    small = make_model(owner, "small")
    make_version(small, min_vram_mb=2000)
    big = make_model(owner, "big")
    make_version(big, min_vram_mb=24000)
    unknown = make_model(owner, "unknown")
    make_version(unknown)
    assert names(model_list(user=owner, max_vram_mb=4096)) == ["small"]
    assert sorted(names(model_list(user=owner, max_vram_mb=24000))) == ["big", "small"]


def test_version_filters_must_hold_for_one_and_the_same_version(owner):
    split = make_model(owner, "split")
    make_version(split, "1", production_ready=True, status="archived")
    make_version(split, "2", production_ready=False, status="available")
    together = make_model(owner, "together")
    make_version(together, "1", production_ready=True, status="available")
    assert names(model_list(user=owner, status="available", production_ready=True)) == ["together"]


def test_keyset_pages_cover_every_model_once_even_when_rows_arrive_between_pages(owner):
    for i in range(7):
        make_model(owner, f"m{i}")
    seen: list[str] = []
    page = model_list(user=owner, limit=3)
    seen += names(page)
    make_model(owner, "newcomer")  # newer than the cursor: must not shift later pages
    while page.next_cursor:
        page = model_list(user=owner, limit=3, cursor=page.next_cursor)
        seen += names(page)
    assert seen == [f"m{i}" for i in reversed(range(7))]


def test_last_page_has_no_next_cursor(owner):
    for i in range(3):
        make_model(owner, f"m{i}")
    page = model_list(user=owner, limit=3)
    assert len(page.items) == 3 and page.next_cursor is None


def test_cursor_keeps_the_filters_it_is_used_with(owner):
    for i in range(4):
        make_model(owner, f"det{i}", task="detector")
        make_model(owner, f"pol{i}", task="policy")
    first = model_list(user=owner, task="policy", limit=2)
    second = model_list(user=owner, task="policy", limit=2, cursor=first.next_cursor)
    assert names(first) + names(second) == ["pol3", "pol2", "pol1", "pol0"]
    assert second.next_cursor is None


@pytest.mark.parametrize("cursor", ["garbage!", "eyJ4IjoxfQ", "eyJpZCI6Ii0xIn0"])
def test_forged_cursor_is_refused(owner, cursor):
    with pytest.raises(BadCursor, match="not a cursor"):
        model_list(user=owner, cursor=cursor)


def test_limit_out_of_bounds_is_refused(owner):
    with pytest.raises(BadCursor, match="limit"):
        model_list(user=owner, limit=0)


def test_model_of_another_user_is_not_found(owner, other_user):
    make_model(other_user, "secret")
    with pytest.raises(NotFound, match="'secret' not found"):
        model_get(user=owner, name="secret")


def test_staff_must_name_the_owner_when_a_name_is_ambiguous(owner, other_user, staff):
    make_model(owner, "shared-name")
    theirs = make_model(other_user, "shared-name")
    with pytest.raises(VersionConflict, match="olivia, oscar"):
        model_get(user=staff, name="shared-name")
    assert model_get(user=staff, name="shared-name", owner="oscar") == theirs


def test_ref_with_version_resolves_that_version(owner):
    model = make_model(owner, "det")
    one = make_version(model, "1.0")
    make_version(model, "2.0")
    assert version_resolve(user=owner, ref="det@1.0") == one


def test_bare_ref_resolves_newest_available_version(owner):
    model = make_model(owner, "det")
    make_version(model, "1")
    newest_available = make_version(model, "2")
    make_version(model, "3", status="error")
    make_version(model, "4", status="archived")
    assert version_resolve(user=owner, ref="det") == newest_available


def test_bare_ref_without_available_version_is_not_found(owner):
    model = make_model(owner, "det")
    make_version(model, "1", status="error")
    with pytest.raises(NotFound, match="'det' has no available version"):
        version_resolve(user=owner, ref="det")


def test_ref_to_missing_version_names_it(owner):
    make_model(owner, "det")
    with pytest.raises(NotFound, match="det@9"):
        version_resolve(user=owner, ref="det@9")


def test_ref_with_owner_prefix_picks_that_namespace(owner, other_user, staff):
    make_version(make_model(owner, "det"), "1")
    theirs = make_version(make_model(other_user, "det"), "1")
    assert version_resolve(user=staff, ref="oscar/det@1") == theirs


def test_ref_to_another_users_model_is_not_found(owner, other_user):
    make_version(make_model(other_user, "det"), "1")
    with pytest.raises(NotFound):
        version_resolve(user=owner, ref="det@1")


def test_malformed_ref_is_refused(owner):
    with pytest.raises(BadReference):
        version_resolve(user=owner, ref="det@@1")
