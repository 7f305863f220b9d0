"""Stored files' content types re-derived from modelmgr's own table: rows written
before it carried the system MIME database's guesses (`.pt` as
`application/vnd.snesdev-page-table`)."""

from django.db import migrations

from modelmgr.ingest.content_types import content_type_for


def retype(apps, schema_editor):  # noqa: ARG001
    ArtifactFile = apps.get_model("modelmgr", "ArtifactFile")
    for row in ArtifactFile.objects.only("pk", "path", "content_type").iterator():
        wanted = content_type_for(row.path)
        if row.content_type != wanted:
            ArtifactFile.objects.filter(pk=row.pk).update(content_type=wanted)


class Migration(migrations.Migration):
    dependencies = [
        ("modelmgr", "0006_usage_refused"),
    ]

    operations = [migrations.RunPython(retype, migrations.RunPython.noop)]
