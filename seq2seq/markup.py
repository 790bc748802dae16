"""HTML input (LibreTranslate's `"format": "html"`): translate the text, keep the markup as written.

`split_html` cuts every HTML text into markup and text fragments to translate (the text
between two tags, entities decoded). Every piece is a slice of the input, never markup
rebuilt from what the parser understood, so tags come back byte for byte: uppercase names,
odd attributes, CDATA sections, and markup the parser cannot finish (an unclosed quote or
comment runs to the end of the text, as in a browser) are all kept as written.
The fragments are translated like any texts; `Segmented.join` then puts the translations,
escaped again (`escape`), back between the tags. Text inside `<script>`, `<style>`,
`<code>`, `<pre>`, `<textarea>` and elements marked `translate="no"` or `class="notranslate"`
is kept as it is. Each fragment is translated on its own, so a sentence broken by inline
markup (`Ein <b>Hund</b> läuft.`) is translated in pieces.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from html.parser import HTMLParser

from seq2seq.sentences import Segmented

KEEP_TAGS = frozenset({"script", "style", "code", "pre", "textarea"})
"""Elements whose text is never translated."""

Piece = tuple[int, bool]
"""Where a piece of the input starts, and whether it is text to translate."""


class _Splitter(HTMLParser):
    """Records where each piece of one HTML text starts, and whether it is text to translate."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.line_starts = [0] + [match.end() for match in re.finditer("\n", text)]
        self.starts: list[Piece] = []
        self.keep_tag: str | None = None  # the element whose text is kept, while inside it
        self.keep_depth = 0

    def split(self, text: str) -> list[Piece]:
        """Parse `text`; what the parser only gives up at the end is kept as markup."""
        self.feed(text)
        done = len(self.starts)
        self.close()
        leftover = self.starts[done:]
        if leftover and text.startswith("<", leftover[0][0]):  # an unfinished tag or comment
            self.starts[done:] = [(leftover[0][0], False)]
        return self.starts

    def _piece(self, translate: bool) -> None:
        line, column = self.getpos()
        self.starts.append((self.line_starts[line - 1] + column, translate))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._piece(False)
        if self.keep_tag == tag:
            self.keep_depth += 1
        elif self.keep_tag is None and _keeps_text(tag, attrs):
            self.keep_tag, self.keep_depth = tag, 1

    def handle_endtag(self, tag: str) -> None:
        self._piece(False)
        if self.keep_tag == tag:
            self.keep_depth -= 1
            if self.keep_depth == 0:
                self.keep_tag = None

    def handle_data(self, data: str) -> None:
        self._piece(self.cdata_elem is None and self.keep_tag is None)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._piece(False)

    def handle_comment(self, data: str) -> None:
        self._piece(False)

    def handle_decl(self, decl: str) -> None:
        self._piece(False)

    def handle_pi(self, data: str) -> None:
        self._piece(False)

    def unknown_decl(self, data: str) -> None:
        self._piece(False)


def _keeps_text(tag: str, attrs: list[tuple[str, str | None]]) -> bool:
    values = dict(attrs)
    classes = (values.get("class") or "").split()
    return tag in KEEP_TAGS or values.get("translate") == "no" or "notranslate" in classes


def _layout(text: str, starts: list[Piece], fragments: list[str]) -> list[int | str]:
    """`text` as markup slices (str) and indices of new `fragments`; runs of text are merged."""
    ends = [start for start, _ in starts[1:]] + [len(text)] if starts else []
    runs: list[tuple[str, bool]] = []
    for (start, translate), end in zip(starts, ends, strict=True):
        if runs and runs[-1][1] == translate:
            runs[-1] = (runs[-1][0] + text[start:end], translate)
        elif end > start:
            runs.append((text[start:end], translate))
    layout: list[int | str] = []
    for raw, translate in runs:
        inner = raw.strip()
        if not translate or not html.unescape(inner).strip():
            layout.append(raw)
            continue
        before, after = raw[: raw.index(inner)], raw[raw.index(inner) + len(inner) :]
        layout += [before, len(fragments), after]
        fragments.append(html.unescape(inner).strip())
    return [piece for piece in layout if piece != ""]


def split_html(texts: Sequence[str]) -> Segmented:
    """Markup and text fragments of every HTML text; translate `.sentences` (the fragments),
    escape the translations (`escape`) and `.join` them."""
    fragments: list[str] = []
    layout = [_layout(text, _Splitter(text).split(text), fragments) for text in texts]
    return Segmented(sentences=fragments, layout=layout)


def escape(translations: Sequence[str]) -> list[str]:
    """Translations made safe to put between tags."""
    return [html.escape(text, quote=False) for text in translations]
