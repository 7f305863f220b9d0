from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("modelmgr", "0009_slot_batching"),
    ]

    operations = [
        migrations.AddField(
            model_name="modelversion",
            name="family",
            field=models.CharField(blank=True, db_index=True, max_length=64),
        ),
        migrations.AddField(
            model_name="modelversion",
            name="parameter_size",
            field=models.CharField(blank=True, max_length=16),
        ),
        migrations.AddField(
            model_name="modelversion",
            name="parameter_count",
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="modelversion",
            name="purpose",
            field=models.CharField(
                blank=True,
                choices=[
                    ("speed", "Speed"),
                    ("balanced", "Balanced"),
                    ("quality", "Quality"),
                    ("specialized", "Specialized"),
                ],
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="modelversion",
            name="recommended_use",
            field=models.CharField(blank=True, max_length=500),
        ),
    ]
