"""The point-in-time recovery history reads "PITR runs" in the admin."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("dbops", "0005_permissions"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="pitrrun",
            options={"ordering": ["-started_at"], "verbose_name": "PITR run"},
        ),
    ]
