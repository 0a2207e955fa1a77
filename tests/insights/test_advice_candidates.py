"""Which hypothetical indexes a statement gets tried with: columns its WHERE, JOIN and ORDER BY compare (pglast)."""

from __future__ import annotations

import pytest

from dbops.insights.advice import candidates, index_name

pytestmark = pytest.mark.pure


def test_candidates_come_from_where_join_and_order_by_columns():
    query = (
        'SELECT o.id FROM "shop_order" o JOIN "shop_line" l ON l."order_id" = o."id" '
        "WHERE o.customer_id = $1 AND o.placed > $2 ORDER BY o.placed LIMIT $3"
    )
    assert candidates(query) == [
        ((None, "shop_order"), ("customer_id",)),
        ((None, "shop_order"), ("id",)),
        ((None, "shop_order"), ("placed",)),
        ((None, "shop_order"), ("customer_id", "id")),
        ((None, "shop_order"), ("customer_id", "placed")),
        ((None, "shop_order"), ("id", "customer_id")),
        ((None, "shop_order"), ("id", "placed")),
        ((None, "shop_line"), ("order_id",)),
    ]
    assert candidates("VACUUM shop_order") == [] and candidates("SELECT 1; SELECT 2") == []
    assert len(index_name("public.a_very_long_table_name_for_a_model", ("and_a_long_column",))) <= 30
