"""Execute wrappers attached once per DatabaseWrapper, however often connection_created fires."""

from __future__ import annotations

import pytest

from dbops.database.wrappers import attach_once

pytestmark = pytest.mark.pure


class FakeConnection:
    def __init__(self) -> None:
        self.execute_wrappers: list = []


class Wrapper:
    def __init__(self, label: str = "") -> None:
        self.label = label


def test_attach_once__a_second_checkout_adds_nothing():
    connection = FakeConnection()
    for _ in range(3):
        attach_once(connection, "dbops_test_wrapper", Wrapper, "x")
    assert len(connection.execute_wrappers) == 1
    assert connection.execute_wrappers[0].label == "x"


def test_attach_once__a_wrapper_someone_removed_is_attached_again():
    connection = FakeConnection()
    attach_once(connection, "dbops_test_wrapper", Wrapper)
    connection.execute_wrappers.clear()
    attach_once(connection, "dbops_test_wrapper", Wrapper)
    assert len(connection.execute_wrappers) == 1


def test_attach_once__different_names_attach_side_by_side_in_order():
    connection = FakeConnection()
    attach_once(connection, "dbops_first", Wrapper, "first")
    attach_once(connection, "dbops_second", Wrapper, "second")
    attach_once(connection, "dbops_first", Wrapper, "first again")
    assert [w.label for w in connection.execute_wrappers] == ["first", "second"]
