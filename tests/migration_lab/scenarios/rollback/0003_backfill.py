from django.db import migrations


def fill_notes(apps, schema_editor):
    apps.get_model("migration_lab", "Item").objects.update(note="filled")


class Migration(migrations.Migration):
    dependencies = [("migration_lab", "0002_item_note")]
    operations = [migrations.RunPython(fill_notes)]
