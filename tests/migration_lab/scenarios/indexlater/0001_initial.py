from django.db import migrations

from tests.migration_lab.scenarios import create_item


class Migration(migrations.Migration):
    initial = True
    operations = [create_item()]
