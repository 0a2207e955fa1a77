from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("migration_lab", "0002_item_note")]
    operations = [migrations.RunSQL("SELECT 1 / 0", migrations.RunSQL.noop)]
