from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("dbops", "0008_backup_signature"),
    ]

    operations = [
        migrations.CreateModel(
            name="DatabaseInsights",
            fields=[],
            options={
                "verbose_name": "database insights",
                "verbose_name_plural": "database insights",
                "permissions": [
                    ("view_database_insights", "Can view database insights and the running statements"),
                    ("cancel_query", "Can cancel a running statement"),
                    ("terminate_query", "Can terminate a database session"),
                ],
                "proxy": True,
                "default_permissions": (),
                "indexes": [],
                "constraints": [],
            },
            bases=("dbops.alert",),
        ),
    ]
