"""Django forms for the pages; they check shape only, the services check meaning."""

from __future__ import annotations

import json
from typing import Any

from django import forms

from modelmgr.models import Framework, Purpose, Task

ARCHIVE_CHOICES = [
    ("", "by file name (.zip is unpacked)"),
    ("1", "unpack the zip"),
    ("0", "store the file as it is"),
]


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


class UploadForm(forms.Form):
    file = forms.FileField(help_text="a model file, or a zipped folder")
    name = forms.SlugField(max_length=100, help_text="the model; registered on its first upload")
    version = forms.CharField(max_length=64, required=False, help_text="default: next number")
    task = forms.ChoiceField(
        choices=[("", "(keep / other)")] + [(t, t) for t in Task.values], required=False
    )
    framework = forms.ChoiceField(
        choices=[("", "detect")] + [c for c in Framework.choices if c[0] != Framework.PROVIDER],
        required=False,
    )
    archive = forms.ChoiceField(choices=ARCHIVE_CHOICES, required=False)
    tags = forms.CharField(required=False, help_text="comma-separated")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    train_accuracy = forms.FloatField(required=False)
    val_accuracy = forms.FloatField(required=False)
    test_accuracy = forms.FloatField(required=False)
    train_loss = forms.FloatField(required=False)
    python_version = forms.CharField(max_length=32, required=False)
    dependencies = forms.CharField(required=False, help_text="comma-separated")
    min_vram_mb = forms.IntegerField(min_value=0, required=False)
    quantization = forms.CharField(max_length=32, required=False)
    family = forms.CharField(max_length=64, required=False)
    parameter_size = forms.CharField(max_length=16, required=False, help_text="e.g. 7B")
    purpose = forms.ChoiceField(
        choices=[("", "(none)")] + [(p, p) for p in Purpose.values], required=False
    )
    recommended_use = forms.CharField(max_length=500, required=False)
    production_ready = forms.BooleanField(required=False)
    metadata = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text="a JSON object"
    )

    def clean_metadata(self) -> dict | None:
        raw = self.cleaned_data["metadata"].strip()
        if not raw:
            return None
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"metadata is not valid JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise forms.ValidationError("metadata must be a JSON object")
        return value

    def version_fields(self) -> dict[str, Any]:
        data = self.cleaned_data
        fields: dict[str, Any] = {}
        for key in (
            "description",
            "python_version",
            "quantization",
            "family",
            "parameter_size",
            "purpose",
            "recommended_use",
        ):
            if data.get(key):
                fields[key] = data[key]
        for key in ("train_accuracy", "val_accuracy", "test_accuracy", "train_loss", "min_vram_mb"):
            if data.get(key) is not None:
                fields[key] = data[key]
        if data.get("dependencies"):
            fields["dependencies"] = _split(data["dependencies"])
        if data.get("production_ready"):
            fields["production_ready"] = True
        if data.get("metadata"):
            fields["metadata"] = data["metadata"]
        return fields

    def tag_list(self) -> list[str] | None:
        return _split(self.cleaned_data["tags"]) or None

    def archive_flag(self) -> bool | None:
        raw = self.cleaned_data.get("archive")
        return None if raw in (None, "") else raw == "1"


class ImportForm(forms.Form):
    url = forms.URLField(max_length=2000, assume_scheme="https")
    sha256 = forms.RegexField(
        regex=r"^[0-9a-fA-F]{64}$",
        required=False,
        error_messages={"invalid": "expected sha256: 64 hex digits"},
    )
    name = forms.SlugField(max_length=100)
    version = forms.CharField(max_length=64, required=False)
    task = forms.ChoiceField(
        choices=[("", "(keep / other)")] + [(t, t) for t in Task.values], required=False
    )
