from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("dbops", "0004_pitr_runs"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="alert",
            options={
                "ordering": ["-fired_at"],
                "permissions": [("acknowledge_alert", "Can acknowledge alerts (they are not sent again)")],
            },
        ),
        migrations.AlterModelOptions(
            name="backuprecord",
            options={
                "get_latest_by": "started_at",
                "ordering": ["-started_at"],
                "permissions": [
                    ("verify_backuprecord", "Can verify backups (restores into a scratch database)"),
                    ("restore_backuprecord", "Can restore a backup into the live database"),
                    ("download_backuprecord", "Can download backup files"),
                ],
            },
        ),
    ]
