"""Routes of the browser pages; one module per page under modelmgr/views/."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path
from django.views.generic import RedirectView

from modelmgr.views import (
    audit,
    before_switch,
    canary,
    compare,
    imports,
    model_detail,
    models,
    settings_page,
    status,
    upload,
)

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="settings", permanent=False), name="home"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("settings", settings_page.settings_view, name="settings"),
    path("settings/apply", settings_page.settings_apply, name="settings-apply"),
    path("settings/preview", before_switch.settings_preview, name="settings-preview"),
    path("settings/<slug:slot_name>/check", before_switch.settings_check, name="settings-check"),
    path("settings/runs/<slug:run_id>", settings_page.settings_run, name="settings-run"),
    path(
        "settings/<slug:slot_name>/rollback",
        settings_page.settings_rollback,
        name="settings-rollback",
    ),
    path(
        "settings/<slug:slot_name>/batching",
        settings_page.settings_batching,
        name="settings-batching",
    ),
    path(
        "settings/<slug:slot_name>/llm-limits",
        settings_page.settings_llm_limits,
        name="settings-llm-limits",
    ),
    path("settings/<slug:slot_name>/arms", canary.settings_arms, name="settings-arms"),
    path(
        "settings/<slug:slot_name>/canary/<slug:action>",
        canary.settings_canary,
        name="settings-canary",
    ),
    path("models", models.model_list_page, name="models"),
    path("models/upload", upload.upload_page, name="upload"),
    path("models/compare", compare.compare_page, name="models-compare"),
    path("models/<slug:name>", model_detail.model_detail_page, name="model-detail"),
    path("models/<slug:name>/report", before_switch.model_report, name="model-report"),
    path("models/<slug:name>/delete", model_detail.model_delete_action, name="model-delete"),
    path(
        "models/<slug:name>/versions/<str:version>/usage",
        model_detail.version_usage_panel,
        name="version-usage",
    ),
    path(
        "models/<slug:name>/versions/<str:version>/<slug:action>",
        model_detail.version_action,
        name="version-action",
    ),
    path("imports", imports.imports_page, name="imports"),
    path("imports/<int:job_id>/<slug:action>", imports.import_action, name="import-action"),
    path("status", status.status_page, name="status"),
    path("audit", audit.audit_page, name="audit"),
]
