from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("migration_lab", "0003_broken")]
    operations = [migrations.AddField("item", "tag", models.TextField(null=True))]
