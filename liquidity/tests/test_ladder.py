"""The ladder's notation and rules. No database."""

from decimal import Decimal as D

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given
from hypothesis import strategies as st

from liquidity.ladder import (
    DEFAULT_LADDER,
    MAX_LADDER_LEVELS,
    Ladder,
    LadderLevel,
    ladder_parse,
)


def refusal(value) -> str:
    with pytest.raises(ValidationError) as caught:
        ladder_parse(value)
    return caught.value.message_dict["ladder"][0]


def test_blank_means_the_default_three_levels():
    assert ladder_parse(None) == ladder_parse("") == ladder_parse("  ") == DEFAULT_LADDER
    assert DEFAULT_LADDER.as_text() == "0.2:50, 0.4:30, 0.5:20"
    assert DEFAULT_LADDER.is_default


def test_text_objects_and_ladders_read_alike():
    text = ladder_parse("0.1:40, 0.3:35; 0.75:25")
    data = ladder_parse(
        [
            {"distance_pct": "0.1", "share_pct": "40"},
            {"distance_pct": "0.30", "share_pct": 35},
            {"distance_pct": "0.75", "share_pct": "25.00"},
        ]
    )
    assert text == data == ladder_parse(text)
    assert text.as_text() == "0.1:40, 0.3:35, 0.75:25"
    assert text.as_data()[2] == {"distance_pct": "0.75", "share_pct": "25"}
    assert [level.distance_bp for level in text] == [10, 30, 75]
    assert [level.share_weight for level in text] == [4000, 3500, 2500]
    assert not text.is_default


def test_a_single_level_holds_the_whole_side():
    assert ladder_parse("1:100").levels == (LadderLevel(D("1"), D("100")),)


def test_a_json_number_arrives_as_the_decimal_of_its_text_and_a_float_is_refused():
    # The API's parser reads JSON's 0.1 as Decimal("0.1"); a float only comes from code.
    ladder = ladder_parse([{"distance_pct": D("0.1"), "share_pct": 100}])
    assert ladder.levels[0].distance_pct == D("0.1")
    with pytest.raises(ValidationError, match="not floating point"):
        ladder_parse([{"distance_pct": 0.1, "share_pct": 100}])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0.2:50, 0.2:50", "Level 2: distance 0.2 % must be greater than level 1's 0.2 %"),
        ("0.4:50, 0.2:50", "must be greater than level 1's 0.4 %"),
        ("0.2:50, 0.4:30", "The shares add up to 80 %; they must add up to 100 %."),
        ("0.2:60, 0.4:60", "add up to 120 %"),
        ("0:100", "Level 1: distance (%): must be greater than zero."),
        ("0.2:0, 0.4:100", "Level 1: share (%): must be greater than zero."),
        ("0.125:100", "Level 1: distance (%): use at most 2 decimal places."),
        ("51:100", "Level 1: distance (%): must be at most 50."),
        ("-1:100", "Level 1: distance (%): must be greater than zero."),
        ("0.2 50", "Cannot read '0.2 50'."),
        ("abc:100", "Level 1: distance (%): use a point for decimals"),
        (",", "Enter at least one level."),
        ([], "Enter at least one level."),
        ([{"distance": "0.2", "share": "100"}], "Each level is an object"),
        (42, "Levels as distance:share pairs"),
    ],
)
def test_refusals_name_the_rule_broken(value, message):
    assert message in refusal(value)


def test_at_most_ten_levels():
    eleven = ", ".join(f"{n}:{D(100) / 11:.2f}" for n in range(1, 12))
    assert f"At most {MAX_LADDER_LEVELS} levels per side; 11 were given." in refusal(eleven)
    ten = ", ".join(f"{n}:10" for n in range(1, 11))
    assert len(ladder_parse(ten)) == 10


@given(
    st.lists(st.integers(min_value=1, max_value=5000), min_size=1, max_size=10, unique=True).map(
        sorted
    ),
    st.data(),
)
def test_any_valid_ladder_round_trips_through_both_notations(distances_bp, data):
    weights = data.draw(
        st.lists(
            st.integers(min_value=1, max_value=10000),
            min_size=len(distances_bp),
            max_size=len(distances_bp),
        ).filter(lambda w: sum(w) == 10000)
        | st.just([10000 // len(distances_bp)] * (len(distances_bp) - 1)).map(
            lambda w: [*w, 10000 - sum(w)]
        )
    )
    ladder = Ladder(
        tuple(
            LadderLevel(D(bp).scaleb(-2), D(w).scaleb(-2))
            for bp, w in zip(distances_bp, weights, strict=True)
        )
    )
    assert ladder_parse(ladder.as_text()) == ladder
    assert ladder_parse(ladder.as_data()) == ladder
