from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    operations = [
        migrations.CreateModel(
            "Item",
            [
                ("id", models.BigAutoField(primary_key=True)),
                ("name", models.CharField(max_length=100)),
                ("note", models.TextField(null=True)),
                ("code", models.CharField(max_length=50, null=True)),
                ("legacy", models.TextField(null=True)),
            ],
        )
    ]
