"""Provider admin: register and change through modelmgr.providers.services (SSRF rules,
audited; the key is write-only), delete unless a slot serves one of its models, and a
*Discover models* action."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from modelmgr.admin.base import _apply_each, _label
from modelmgr.exceptions import ModelmgrError
from modelmgr.models import ModelVersion, Provider, Slot
from modelmgr.providers.transport import guard_base_url


class ProviderAdminForm(forms.ModelForm):
    """The key is never rendered back: blank keeps it, "clear" removes it."""

    api_key = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="sent as Authorization: Bearer; leave blank to keep the stored key",
    )
    clear_api_key = forms.BooleanField(required=False, label="Remove the stored key")

    class Meta:
        model = Provider
        fields = ["name", "kind", "base_url", "api_key", "description"]
        help_texts = {
            "base_url": "openai: the base URL the openai client takes (…/v1, added when the "
            "URL has no path); ollama: http://host:11434. Checked with the imports' SSRF "
            "rules (MODELMGR_IMPORT_ALLOWED_HOSTS, MODELMGR_IMPORT_ALLOWED_PRIVATE_HOSTS)",
        }

    def clean(self):
        data = super().clean()
        kind = data.get("kind") or self.instance.kind
        if data.get("base_url") and kind:
            try:
                data["base_url"], _ = guard_base_url(kind, data["base_url"])
            except ModelmgrError as exc:
                raise forms.ValidationError({"base_url": exc.detail}) from None
        return data


def _serving(provider: Provider) -> bool:
    versions = ModelVersion.objects.filter(provider=provider)
    return Slot.objects.filter(active_version__in=versions).exists() or (
        Slot.objects.filter(canary_version__in=versions).exists()
        or Slot.objects.filter(shadow_version__in=versions).exists()
    )


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    form = ProviderAdminForm
    list_display = ["name", "kind", "base_url", "key", "discovered_at", "discovery_error"]
    list_filter = ["kind"]
    search_fields = ["name", "base_url", "description"]

    @admin.display(description="API key")
    def key(self, obj: Provider) -> str:
        return obj.masked_key or "-"

    def get_readonly_fields(self, request, obj=None):
        # A rename or a new kind would orphan what was discovered under the old one.
        base = ["owner", "discovered_at", "discovery_error"]
        return [*base, "name", "kind"] if obj is not None else base

    def save_model(self, request, obj, form, change):
        from modelmgr.providers.services import provider_create, provider_update

        key = form.cleaned_data.get("api_key") or None
        if form.cleaned_data.get("clear_api_key"):
            key = ""
        if change:
            provider_update(
                provider=obj,
                actor=request.user,
                actor_label=_label(request),
                base_url=form.cleaned_data["base_url"],
                api_key=key,
                description=form.cleaned_data.get("description", ""),
            )
        else:
            created = provider_create(
                name=obj.name,
                kind=obj.kind,
                base_url=obj.base_url,
                api_key=key or "",
                description=obj.description,
                actor=request.user,
                actor_label=_label(request),
            )
            obj.pk = created.pk

    def has_delete_permission(self, request, obj=None) -> bool:
        return not (obj is not None and _serving(obj)) and super().has_delete_permission(
            request, obj
        )

    def delete_model(self, request, obj):
        from modelmgr.providers.services import provider_delete

        provider_delete(provider=obj, actor=request.user, actor_label=_label(request))

    def delete_queryset(self, request, queryset):
        from modelmgr.providers.services import provider_delete

        def delete(provider):
            provider_delete(provider=provider, actor=request.user, actor_label=_label(request))
            return provider.name

        _apply_each(self, request, list(queryset), delete, ok="Deleted", refused="Not deleted")


@admin.action(description="Discover models (ask the provider for its list)")
def discover_models(modeladmin, request, queryset):
    from modelmgr.providers.discovery import provider_discover

    def discover(provider):
        found = provider_discover(
            provider=provider, actor=request.user, actor_label=_label(request)
        )
        created = ", ".join(found["created"]) or "nothing new"
        return f"{provider.name}: {len(found['models'])} listed, created {created}"

    _apply_each(
        modeladmin,
        request,
        queryset,
        discover,
        ok="Discovered",
        refused="Not discovered",
        name=lambda provider: provider.name,
    )


ProviderAdmin.actions = [discover_models]
