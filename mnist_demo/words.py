"""How the app writes digits and counts in English: one home for articles and plurals."""

from __future__ import annotations


def a_digit(digit: int | str) -> str:
    """'a 7', 'an 8': the article English gives a digit's spoken name (only eight starts
    with a vowel sound)."""
    return f"{'an' if str(digit) == '8' else 'a'} {digit}"


def count_of(n: int, thing: str) -> str:
    """'1 test image', '3 test images'."""
    return f"{n:,} {thing}{'' if n == 1 else 's'}"
