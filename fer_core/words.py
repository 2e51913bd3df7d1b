"""Small helpers for what the product says: counts with the right noun, and sentences."""

from __future__ import annotations


def counted(number: int, noun: str, plural: str | None = None) -> str:
    """ "1 epoch", "5 epochs", "3,589 faces": a count and its noun, singular for one."""
    return f"{number:,} {noun if number == 1 else plural or noun + 's'}"


def sentence(text) -> str:
    """A message (an error's text, say) as a sentence: its first letter a capital, unless it
    starts with a name that must stay as written (a file, a path, a model: "face.png: ...",
    "trained/cnn exists", "cnn: ...")."""
    text = str(text).strip()
    first = text.split(" ", 1)[0]
    if not first.isalpha():  # punctuation in or after the first word: a name
        return text
    return text[:1].upper() + text[1:]
