"""Signed backups: a description forged or changed after the backup is refused while the key is set."""

from __future__ import annotations

import datetime

import pytest

from dbops.backups import signing
from dbops.exceptions import VerificationFailed

pytestmark = pytest.mark.pure

KEY = "k" * 16 + "-signing-key-for-tests-only"


def description(**changes):
    fields = {
        "name": "app-20261203-070000-7.dump.age",
        "database": "app",
        "started_at": datetime.datetime(2026, 12, 3, 7, tzinfo=datetime.UTC).isoformat(),
        "sha256": "ab" * 32,
        "size_bytes": 1234,
        "row_counts": {"public.auth_user": 3},
        "encrypted": True,
        "compressed": False,
    }
    return signing.describe(**{**fields, **changes})


def test_check__a_signed_description_passes():
    signing.check(KEY, description(), signing.sign(KEY, description()), label="backup #7")


@pytest.mark.parametrize(
    "changed",
    [{"sha256": "cd" * 32}, {"size_bytes": 1235}, {"row_counts": {"public.auth_user": 4}}, {"name": "other.dump"}],
)
def test_check__any_changed_field_is_refused(changed):
    signature = signing.sign(KEY, description())
    with pytest.raises(VerificationFailed, match="signature does not match"):
        signing.check(KEY, description(**changed), signature, label="backup #7")


def test_check__unsigned_is_refused_while_a_key_is_set_and_accepted_without_one():
    with pytest.raises(VerificationFailed, match="is not signed"):
        signing.check(KEY, description(), "", label="backup #7")
    signing.check("", description(), "", label="backup #7")  # signing off: nothing to check


def test_check__another_key_is_refused():
    with pytest.raises(VerificationFailed, match="signature does not match"):
        signing.check(KEY, description(), signing.sign(KEY + "x", description()), label="backup #7")


def test_describe__refuses_a_description_missing_a_signed_field():
    with pytest.raises(ValueError, match="sha256"):
        signing.describe(
            name="x", database="app", started_at="", size_bytes=1, row_counts={}, encrypted=False, compressed=False
        )
