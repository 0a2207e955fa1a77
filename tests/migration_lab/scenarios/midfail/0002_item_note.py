from django.db import migrations

from tests.migration_lab.scenarios import add_note


class Migration(migrations.Migration):
    dependencies = [("migration_lab", "0001_initial")]
    operations = [add_note()]
