from django.db import migrations, models

# Every finding here has a mechanical safe form (manage.py migration_rewrite).


class Migration(migrations.Migration):
    dependencies = [("migration_lab", "0001_initial")]
    operations = [
        migrations.AddField("item", "flag", models.BooleanField(default=False)),
        migrations.AlterField("item", "note", models.TextField()),
        migrations.AddConstraint(
            "item", models.CheckConstraint(condition=~models.Q(name=""), name="item_name_not_blank")
        ),
        migrations.AddConstraint("item", models.UniqueConstraint(fields=["code"], name="item_code_uniq")),
        migrations.AddIndex("item", models.Index(fields=["name"], name="item_name_idx")),
        migrations.RemoveField("item", "legacy"),
    ]
