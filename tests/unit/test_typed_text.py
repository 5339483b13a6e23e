"""Typed free text (reasons, tickets): one length limit and the names' rule on hidden characters,
visible length for minimums, escaped on output."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mlops_platform.governance.promotion import PromotionOrder
from mlops_platform.text import (
    MAX_TEXT_CHARS,
    printable,
    require_text,
    text_problem,
    visible_length,
)

ATTACKS = [
    "B" * 130_000,
    "x" * (MAX_TEXT_CHARS + 1),
    "\x1b[0m" * 6,
    "\u200b" * 3,
    "\u200b" * 25,
    "fine\x1b[2K\x1b[1Ahidden",
    "two\nlines",
    "bidi \u202e txt",
    "   ",
]


@pytest.mark.parametrize("text", ATTACKS)
def test_attack_texts_are_refused(text: str) -> None:
    assert text_problem(text) is not None
    with pytest.raises(ValidationError, match="reason"):
        PromotionOrder(reason=text)
    with pytest.raises(ValidationError, match="ticket"):
        PromotionOrder(reason="a fine reason", ticket=text)


@pytest.mark.parametrize(
    "text", ["Q3 refresh", "INC-42: alert volume doubled", "é" * MAX_TEXT_CHARS]
)
def test_plain_text_up_to_the_limit_is_accepted(text: str) -> None:
    assert text_problem(text) is None
    assert require_text(text) == text
    assert PromotionOrder(reason=text, ticket="CHG-1").reason == text


def test_visible_length_counts_what_a_reader_sees() -> None:
    assert visible_length("\x1b[0m" * 6) == 18  # "[0m" six times: under 20, not 24
    assert visible_length("\u200b" * 25) == 0
    assert visible_length("  a" + " " * 30 + "b  ") == 3


def test_printable_shows_hidden_characters_escaped() -> None:
    shown = printable("ok\x1b[2K\u200b\nnext", keep="\n")
    assert "\x1b" not in shown and "\u200b" not in shown
    assert shown == "ok\\x1b[2K\\u200b\nnext"
    assert printable("a\nb") == "a\\x0ab"
