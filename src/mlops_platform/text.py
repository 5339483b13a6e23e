"""The rule for text a person types into a record (a reason, a ticket), and for printing
recorded text: the characters names may not hold either are refused on input and shown escaped
on output. Standard library only, so any command may print through it at no import cost."""

from __future__ import annotations

import unicodedata

# Refused in names and typed text, escaped on output: controls, invisible formatting (zero-width
# joiners, bidi overrides), line/paragraph separators, surrogates, private-use and unassigned
# code points.
HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})

# The longest free text a person types into a record (a reason, a ticket, a comment): long
# enough for a paragraph and a link, short enough that a record's ZenML mirror always fits.
MAX_TEXT_CHARS = 2000


class InvalidTextError(ValueError):
    """A typed reason, ticket or comment is over `MAX_TEXT_CHARS` or holds control or invisible
    characters: bad input, refused before anything is recorded."""


def text_problem(text: str, what: str = "reason") -> str | None:
    """Why ``text`` cannot be recorded as typed free text (blank, longer than `MAX_TEXT_CHARS`,
    control or invisible characters), or None.

    The rule of names (`approvals.policy.name_problem`, `trust.identity.check_name`) for text:
    every control character (newline and tab included: a reason is one line, so a record cannot
    forge rows or move the cursor of a terminal that prints it), invisible formatting
    (zero-width, bidi), line and paragraph separators, surrogates, private-use and unassigned
    code points are refused.
    """
    if len(text) > MAX_TEXT_CHARS:
        return (
            f"{what} is {len(text):,} characters long; the limit is {MAX_TEXT_CHARS:,}: keep it "
            "to the point and link the details (a ticket or document)"
        )
    hidden = sorted(
        {f"U+{ord(c):04X}" for c in text if unicodedata.category(c) in HIDDEN_CATEGORIES}
    )
    if hidden:
        shown = ", ".join(hidden[:5]) + (", ..." if len(hidden) > 5 else "")
        return (
            f"{what} contains control or invisible characters ({shown}); type it in plain "
            "text on one line"
        )
    if not text.strip():
        return f"{what} is blank; write it out"
    return None


def require_text(text: str, what: str = "reason") -> str:
    """``text`` if it may be recorded (`text_problem`), else raise `InvalidTextError`."""
    problem = text_problem(text, what)
    if problem is not None:
        raise InvalidTextError(problem)
    return text


def printable(text: str, keep: str = "") -> str:
    """``text`` with every character `text_problem` refuses (control, invisible formatting, ...)
    shown escaped (``\\x1b``, ``\\u200b``) instead of written, except those in ``keep`` (pure).
    What prints recorded text uses it: older records and other writers may hold them, and a raw
    escape sequence would drive the reader's terminal (erase or hide the rows above it)."""
    shown = (
        c if c in keep or unicodedata.category(c) not in HIDDEN_CATEGORIES else _escaped(c)
        for c in text
    )
    return "".join(shown)


def _escaped(char: str) -> str:
    code = ord(char)
    return (
        f"\\x{code:02x}"
        if code < 0x100
        else f"\\u{code:04x}"
        if code < 0x10000
        else f"\\U{code:08x}"
    )


def visible_length(text: str) -> int:
    """How many characters of ``text`` a reader sees: control and invisible characters left
    out, surrounding whitespace trimmed and every run of whitespace counted as one (a minimum
    length such as `override.min_reason_chars` counts these)."""
    shown = "".join(c for c in text if unicodedata.category(c) not in HIDDEN_CATEGORIES)
    return len(" ".join(shown.split()))
