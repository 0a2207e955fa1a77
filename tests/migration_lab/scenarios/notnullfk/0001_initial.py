from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    operations = [
        migrations.CreateModel("Owner", [("id", models.BigAutoField(primary_key=True))]),
        migrations.CreateModel(
            "Item",
            [
                ("id", models.BigAutoField(primary_key=True)),
                ("name", models.CharField(max_length=100)),
                ("owner", models.ForeignKey("migration_lab.owner", null=True, on_delete=models.PROTECT)),
                ("rank", models.IntegerField(null=True)),
            ],
        ),
    ]
