from django.db import migrations, models


class Migration(migrations.Migration):
    """NOT NULL on a foreign key (Django drops and re-adds it) and on a column whose NULLs Django fills first."""

    dependencies = [("migration_lab", "0001_initial")]
    operations = [
        migrations.AlterField("item", "owner", models.ForeignKey("migration_lab.owner", on_delete=models.PROTECT)),
        migrations.AlterField("item", "rank", models.IntegerField(default=0)),
    ]
