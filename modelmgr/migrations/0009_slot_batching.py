from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("modelmgr", "0008_token_slots"),
    ]

    operations = [
        migrations.AddField(
            model_name="slot",
            name="max_batch_size",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="slot",
            name="max_queue_delay_us",
            field=models.PositiveIntegerField(default=1000),
        ),
        migrations.AddField(
            model_name="slot",
            name="preferred_batch_sizes",
            field=models.JSONField(blank=True, default=list),
        ),
    ]
