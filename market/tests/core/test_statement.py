"""The pure rules of a trader's history: maker or taker, the side/role filter, and the
statement's running balances (opening + changes == closing, for every asset)."""

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from market.core.statement import (
    BUY,
    CLOSING,
    ENTRY,
    MAKER,
    OPENING,
    SELL,
    TAKER,
    LedgerLine,
    Position,
    fill_kinds,
    role_of,
    statement_lines,
)

D = Decimal
START = datetime(2026, 3, 1, tzinfo=UTC)
END = datetime(2026, 4, 1, tzinfo=UTC)


def test_the_aggressor_is_the_taker_and_the_resting_side_the_maker():
    assert role_of(BUY, BUY) == TAKER  # a buyer lifted an offer
    assert role_of(SELL, BUY) == MAKER  # ... which was resting
    assert role_of(SELL, SELL) == TAKER
    assert role_of(BUY, SELL) == MAKER


def test_fill_kinds_are_the_side_and_aggressor_pairs_a_filter_keeps():
    assert fill_kinds() == [(BUY, BUY), (BUY, SELL), (SELL, SELL), (SELL, BUY)]
    assert fill_kinds(role=MAKER) == [(BUY, SELL), (SELL, BUY)]
    assert fill_kinds(role=TAKER) == [(BUY, BUY), (SELL, SELL)]
    assert fill_kinds(side=SELL) == [(SELL, SELL), (SELL, BUY)]
    assert fill_kinds(side=BUY, role=MAKER) == [(BUY, SELL)]


def line(entry_id, asset, available, locked="0", kind="Deposit"):
    return LedgerLine(
        entry_id=entry_id,
        asset=asset,
        created_at=START + timedelta(minutes=entry_id),
        kind=kind,
        available_delta=D(available),
        locked_delta=D(locked),
    )


def test_a_statement_opens_runs_and_closes_every_asset_in_order():
    lines = list(
        statement_lines(
            assets=["EUR", "AAA", "BBB"],
            opening={"EUR": Position(D("100.00"), D("0.00")), "BBB": Position(D("5"), D("2"))},
            entries=[
                line(1, "EUR", "-20.00", "20.00", kind="Reserve"),
                line(2, "EUR", "0.00", "-20.00", kind="Trade debit"),
                line(3, "BBB", "2"),
            ],
            start=START,
            end=END,
        )
    )
    summary = [(x.asset, x.line, x.balance.available, x.balance.locked) for x in lines]
    assert summary == [
        ("EUR", OPENING, D("100.00"), D("0.00")),
        ("EUR", ENTRY, D("80.00"), D("20.00")),
        ("EUR", ENTRY, D("80.00"), D("0.00")),
        ("EUR", CLOSING, D("80.00"), D("0.00")),
        ("AAA", OPENING, D("0"), D("0")),  # nothing, yet listed: every asset is
        ("AAA", CLOSING, D("0"), D("0")),
        ("BBB", OPENING, D("5"), D("2")),
        ("BBB", ENTRY, D("7"), D("2")),
        ("BBB", CLOSING, D("7"), D("2")),
    ]
    assert [x.at for x in lines if x.line != ENTRY] == [START, END] * 3
    assert lines[1].entry.kind == "Reserve" and lines[1].at == START + timedelta(minutes=1)


@pytest.mark.parametrize(
    "entries",
    [
        [line(1, "BBB", "1"), line(2, "EUR", "1.00")],  # EUR comes first
        [line(1, "EUR", "1.00"), line(2, "AAA", "1"), line(3, "EUR", "1.00")],  # regrouped
        [line(1, "ZZZ", "1")],  # not an asset of the statement
    ],
)
def test_entries_out_of_the_assets_order_are_refused(entries):
    with pytest.raises(ValueError, match="out of order"):
        list(
            statement_lines(
                assets=["EUR", "AAA", "BBB"], opening={}, entries=entries, start=START, end=END
            )
        )


ASSETS = ["EUR", "AAA", "BBB"]
amounts = st.decimals(min_value=D("-1000000"), max_value=D("1000000"), places=2)
entries_strategy = st.lists(st.tuples(st.sampled_from(ASSETS), amounts, amounts), max_size=40).map(
    lambda rows: [
        line(index, asset, available, locked)
        for index, (asset, available, locked) in enumerate(
            sorted(rows, key=lambda row: ASSETS.index(row[0])), start=1
        )
    ]
)
openings = st.dictionaries(
    st.sampled_from(ASSETS), st.builds(Position, amounts, amounts), max_size=3
)


@given(opening=openings, entries=entries_strategy)
def test_opening_plus_the_changes_is_the_closing_balance_of_every_asset(opening, entries):
    lines = list(
        statement_lines(assets=ASSETS, opening=opening, entries=entries, start=START, end=END)
    )
    changes = defaultdict(lambda: [D(0), D(0)])
    for entry in entries:
        changes[entry.asset][0] += entry.available_delta
        changes[entry.asset][1] += entry.locked_delta
    by_asset = defaultdict(list)
    for statement_line in lines:
        by_asset[statement_line.asset].append(statement_line)
    assert list(by_asset) == ASSETS
    for asset, rows in by_asset.items():
        first, *middle, last = rows
        assert (first.line, last.line) == (OPENING, CLOSING)
        assert {row.line for row in middle} <= {ENTRY}
        assert [row.entry for row in middle] == [e for e in entries if e.asset == asset]
        start = opening.get(asset, Position())
        assert first.balance == start
        available, locked = changes[asset]
        assert last.balance == Position(start.available + available, start.locked + locked)
        # Each entry's balance is the one before it moved by the entry.
        for before, after in pairwise(rows[:-1]):
            assert after.balance == before.balance.moved(
                after.entry.available_delta, after.entry.locked_delta
            )
        assert (middle[-1].balance if middle else first.balance) == last.balance
