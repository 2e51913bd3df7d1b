r"""Messages from fer_core as the page shows them: a sentence, Markdown-safe. Streamlit reads an
error box's text as Markdown, where a subject pattern `^(S\d+)_` outside backticks loses its
underscores and turns italic, and a file name `S010_004_1.png` loses its own."""

from __future__ import annotations

import re

from fer_core.words import sentence

# What Streamlit's Markdown would read as markup (emphasis, LaTeX, links, HTML, tables, headings).
MARKUP = re.compile(r"([\\*_$~\[\]<>|#])")


def said(text) -> str:
    """`text` as a sentence, its markup characters escaped outside `code spans` (kept as written)."""
    parts = sentence(text).split("`")
    if len(parts) % 2 == 0:  # an unmatched backtick: no code span, every character as written
        return "\\`".join(MARKUP.sub(r"\\\1", part) for part in parts)
    # The odd parts are inside code spans.
    return "`".join(part if index % 2 else MARKUP.sub(r"\\\1", part) for index, part in enumerate(parts))
