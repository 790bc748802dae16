"""HTML input (LibreTranslate's `"format": "html"`): translate the text, keep the markup.

`split_html` cuts every HTML text into markup, kept as written, and text fragments to
translate (the text between two tags, entities decoded). The fragments are translated like
any texts; `Segmented.join` then puts the translations, escaped again, back between the tags.
Text inside `<script>`, `<style>`, `<code>`, `<pre>` and elements marked `translate="no"` or
`class="notranslate"` is kept as it is. Each fragment is translated on its own, so a sentence
broken by inline markup (`Ein <b>Hund</b> läuft.`) is translated in pieces.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from html.parser import HTMLParser

from seq2seq.sentences import Segmented

KEEP_TAGS = frozenset({"script", "style", "code", "pre", "textarea"})
"""Elements whose text is never translated."""


class _Splitter(HTMLParser):
    """Collects one HTML text's pieces: markup and kept text (str) and fragments (int)."""

    def __init__(self, fragments: list[str]) -> None:
        super().__init__(convert_charrefs=True)
        self.fragments = fragments
        self.pieces: list[int | str] = []
        self.keep_tag: str | None = None  # the element whose text is kept, while inside it
        self.keep_depth = 0
        self.text = ""  # text seen since the last tag (the parser may hand it over in parts)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._markup(self.get_starttag_text() or f"<{tag}>")
        if self.keep_tag == tag:
            self.keep_depth += 1
        elif self.keep_tag is None and _keeps_text(tag, attrs):
            self.keep_tag, self.keep_depth = tag, 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._markup(self.get_starttag_text() or f"<{tag}/>")

    def handle_endtag(self, tag: str) -> None:
        self._markup(f"</{tag}>")
        if self.keep_tag == tag:
            self.keep_depth -= 1
            if self.keep_depth == 0:
                self.keep_tag = None

    def handle_data(self, data: str) -> None:
        if self.cdata_elem is not None:  # script or style: raw text, no entities decoded
            self._markup(data)
        elif self.keep_tag is not None:
            self._markup(html.escape(data, quote=False))
        else:
            self.text += data

    def _markup(self, piece: str) -> None:
        """Keep `piece` as it is, after the text before it."""
        self._flush_text()
        self.pieces.append(piece)

    def _flush_text(self) -> None:
        """The text since the last tag: its whitespace kept, the rest a fragment."""
        data, self.text = self.text, ""
        text = data.strip()
        if not text:
            self.pieces.append(data)
            return
        start = data.index(text)
        self.pieces += [data[:start], len(self.fragments), data[start + len(text) :]]
        self.fragments.append(text)

    def close(self) -> None:
        super().close()
        self._flush_text()

    def handle_comment(self, data: str) -> None:
        self._markup(f"<!--{data}-->")

    def handle_decl(self, decl: str) -> None:
        self._markup(f"<!{decl}>")

    def handle_pi(self, data: str) -> None:
        self._markup(f"<?{data}>")

    def unknown_decl(self, data: str) -> None:
        self._markup(f"<![{data}]>")


def _keeps_text(tag: str, attrs: list[tuple[str, str | None]]) -> bool:
    values = dict(attrs)
    classes = (values.get("class") or "").split()
    return tag in KEEP_TAGS or values.get("translate") == "no" or "notranslate" in classes


def split_html(texts: Sequence[str]) -> Segmented:
    """Markup and text fragments of every HTML text; translate `.sentences` (the fragments),
    escape the translations (`escape`) and `.join` them."""
    fragments: list[str] = []
    layout: list[list[int | str]] = []
    for text in texts:
        splitter = _Splitter(fragments)
        splitter.feed(text)
        splitter.close()
        layout.append([piece for piece in splitter.pieces if piece != ""])
    return Segmented(sentences=fragments, layout=layout)


def escape(translations: Sequence[str]) -> list[str]:
    """Translations made safe to put between tags."""
    return [html.escape(text, quote=False) for text in translations]
