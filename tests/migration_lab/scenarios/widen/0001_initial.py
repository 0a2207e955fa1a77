from django.db import migrations, models


class Migration(migrations.Migration):
    """An integer key (AutoField, as projects made before DEFAULT_AUTO_FIELD have) and a foreign key to it."""

    initial = True
    operations = [
        migrations.CreateModel(
            "Owner", [("id", models.AutoField(primary_key=True)), ("name", models.CharField(max_length=100))]
        ),
        migrations.CreateModel(
            "Item",
            [
                ("id", models.BigAutoField(primary_key=True)),
                ("owner", models.ForeignKey("migration_lab.owner", on_delete=models.CASCADE)),
            ],
        ),
    ]
