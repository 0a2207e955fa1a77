from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("migration_lab", "0001_initial")]
    operations = [migrations.RemoveField("item", "name")]
