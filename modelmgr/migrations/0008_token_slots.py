from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("modelmgr", "0007_content_types"),
    ]

    operations = [
        migrations.AddField(
            model_name="apitoken",
            name="slots",
            field=models.JSONField(blank=True, default=list),
        ),
    ]
