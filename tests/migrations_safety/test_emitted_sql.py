"""Findings true of the SQL Django emits (issue #26), on the corpus tables (corpus_bigitem: 20,000 rows).

Each case is one a real package ships (named in the test): what the schema editor does, not what the operation's
class name suggests.
"""

from __future__ import annotations

import pytest
from django.db import migrations, models

from dbops.migrations_safety.catalog import Severity
from tests.migrations_safety.test_rules import corpus_tables, findings_of  # noqa: F401 - corpus_tables is a fixture

pytestmark = [pytest.mark.database, pytest.mark.django_db, pytest.mark.usefixtures("corpus_tables")]


def graded(*operations, atomic=True) -> set[tuple[str, Severity]]:
    return {(f.code, f.severity) for f in findings_of(*operations, atomic=atomic)}


# -- false blocks --------------------------------------------------------------------------------------------------
def test_blank_text_field__gets_default_empty_string_so_the_alter_succeeds():
    """Wagtailembeds 0006: CharField(blank=True) is added with DEFAULT '' NOT NULL, then the default is dropped."""
    (finding,) = findings_of(migrations.AddField("bigitem", "hash", models.CharField(max_length=32, blank=True)))
    assert (finding.code, finding.severity) == ("M001", Severity.WARN)
    assert "existing rows get ''" in finding.detail
    # Without blank and default, the ALTER itself fails on a table with rows.
    (failing,) = findings_of(migrations.AddField("bigitem", "hash", models.CharField(max_length=32)))
    assert (failing.code, failing.severity) == ("M001", Severity.BLOCK)


class FakeAddIndex(migrations.AddIndex):
    """django_celery_results 0009: records an index in the state only."""

    def database_forwards(self, *args, **kwargs):
        """Emit nothing."""


def test_operation_that_overrides_database_forwards__is_graded_by_what_it_emits():
    index = models.Index(fields=["name"], name="bigitem_name_idx")
    assert graded(FakeAddIndex("bigitem", index)) == set()
    assert graded(migrations.AddIndex("bigitem", index)) == {("M005", Severity.BLOCK)}


def test_unmanaged_model__nothing_reaches_the_database():
    """Wagtailadmin 0003: DeleteModel and CreateModel of a managed=False model."""
    unmanaged = migrations.CreateModel(
        "Admin", [("id", models.AutoField(primary_key=True))], options={"managed": False, "db_table": "corpus_bigitem"}
    )
    assert graded(unmanaged, migrations.DeleteModel("Admin")) == set()


def creates_one_row(apps, schema_editor):
    Owner = apps.get_model("corpus", "Owner")
    Owner.objects.create(name="first")


def updates_some_rows(apps, schema_editor):
    BigItem = apps.get_model("corpus", "BigItem")
    BigItem.objects.filter(code="legacy").update(code="new")


def test_run_python__graded_by_the_rows_it_changes_not_the_models_it_names(corpus_tables):  # noqa: F811
    noop = migrations.RunPython.noop
    assert graded(migrations.RunPython(creates_one_row, noop)) == set()
    (finding,) = findings_of(migrations.RunPython(updates_some_rows, noop))
    assert (finding.code, finding.severity) == ("M017", Severity.WARN)
    assert "a filter selects" in finding.detail and "count them" in finding.detail


def fill_every_row(model):
    for item in model.objects.filter(notes__isnull=True).iterator():
        item.notes = "filled"
        item.save(update_fields=["notes"])


def make_bootstrap(model_string: str):
    """Wagtailcore 0056 (BootstrapTranslatableModel): the model is a closure variable, the work is a helper's."""

    def forwards(apps, schema_editor):
        model = apps.get_model(model_string)
        fill_every_row(model)

    return forwards


def test_run_python__follows_closures_and_helpers_to_a_full_table_rewrite():
    (finding,) = findings_of(migrations.RunPython(make_bootstrap("corpus.BigItem"), migrations.RunPython.noop))
    assert (finding.code, finding.severity) == ("M017", Severity.BLOCK)
    assert "every row of corpus_bigitem" in finding.detail and "fill_every_row()" in finding.detail


# -- silent misses ---------------------------------------------------------------------------------------------------
def test_alter_field_on_a_foreign_key__drops_and_revalidates_the_constraint():
    """Cms 0040 and socialaccount 0005 (null=True): Django drops the foreign key and adds it back, validated."""
    unindexed = models.ForeignKey("corpus.owner", null=True, on_delete=models.CASCADE, db_index=False)
    assert ("M008", Severity.BLOCK) in graded(migrations.AlterField("bigitem", "owner", unindexed))
    # Python-only changes (on_delete, verbose_name: Django's non_db_attrs) emit no SQL at all.
    renamed = models.ForeignKey("corpus.owner", null=True, on_delete=models.PROTECT, verbose_name="maker")
    assert graded(migrations.AlterField("bigitem", "owner", renamed)) == set()


def test_foreign_key_to_text__is_a_type_change():
    """Wagtailcore 0070/0080: the integer column of a ForeignKey becomes varchar(255)."""
    findings = findings_of(migrations.AlterField("bigitem", "owner", models.CharField(max_length=255, null=True)))
    (rewrite,) = [f for f in findings if f.code == "M003"]
    assert rewrite.severity is Severity.BLOCK and "bigint -> varchar(255)" in rewrite.detail


def test_positive_integer_field__its_check_scans_every_row():
    """Cms 0037: PositiveIntegerField(default=0) adds CHECK ("depth" >= 0), checked on every existing row."""
    assert ("M009", Severity.BLOCK) in graded(
        migrations.AddField("bigitem", "depth", models.PositiveIntegerField(default=0))
    )
    assert ("M009", Severity.INFO) in graded(
        migrations.AddField("smallitem", "depth", models.PositiveIntegerField(default=0))
    )


def test_unique_removed__drops_the_constraint_and_its_like_index_without_concurrently():
    """Account 0004: unique=True removed from a varchar."""
    unique = models.CharField(max_length=50, null=True, unique=True)
    findings = findings_of(
        migrations.AlterField("bigitem", "code", unique),
        migrations.AlterField("bigitem", "code", models.CharField(max_length=50, null=True)),
    )
    (drop,) = [f for f in findings if f.code == "M007"]
    assert drop.severity is Severity.WARN and "_like index" in drop.detail


def test_dropping_a_database_default__warns_about_the_code_that_relies_on_it():
    """The running code omits a db_default column from its INSERTs: once the DEFAULT is gone they fail."""
    with_default = models.CharField(max_length=100, db_default="unnamed")
    findings = findings_of(
        migrations.AlterField("bigitem", "name", with_default),
        migrations.AlterField("bigitem", "name", models.CharField(max_length=100)),
    )
    (dropped,) = [f for f in findings if f.code == "M001"]
    assert dropped.severity is Severity.WARN and "DEFAULT is dropped while NOT NULL" in dropped.detail
    # A column this plan adds is not used by running code: nothing to warn about.
    added = findings_of(
        migrations.AddField("bigitem", "flag", models.BooleanField(db_default=False)),
        migrations.AlterField("bigitem", "flag", models.BooleanField(default=False)),
    )
    assert [f for f in added if f.code == "M001"] == []
