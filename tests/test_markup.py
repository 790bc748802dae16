"""HTML input: the text between tags is translated, the markup comes back as it was."""

from seq2seq.markup import escape, split_html

PAGE = (
    '<!DOCTYPE html><p class="x">Ein Hund &amp; eine Katze.<br/> Zwei <b>Männer</b></p>'
    '<script>if (a < b) x = "&amp;";</script><!-- Kommentar -->'
    '<span translate="no">Name <i>Nie</i> &lt;</span><code>x = 1</code> Ende'
)


def test_text_between_tags_is_cut_out_with_entities_decoded() -> None:
    segmented = split_html([PAGE])
    assert segmented.sentences == ["Ein Hund & eine Katze.", "Zwei", "Männer", "Ende"]


def test_markup_comes_back_as_written_around_escaped_translations() -> None:
    segmented = split_html([PAGE])
    translations = escape(["A dog & a cat.", "Two", "men", "End"])
    assert segmented.join(translations) == [
        '<!DOCTYPE html><p class="x">A dog &amp; a cat.<br/> Two <b>men</b></p>'
        '<script>if (a < b) x = "&amp;";</script><!-- Kommentar -->'
        '<span translate="no">Name <i>Nie</i> &lt;</span><code>x = 1</code> End'
    ]


def test_kept_elements_nest_and_end() -> None:
    segmented = split_html(['<div class="a notranslate"><div>eins</div>zwei</div>drei'])
    assert segmented.sentences == ["drei"]


def test_plain_empty_and_markup_only_texts() -> None:
    segmented = split_html(["eins < zwei", "", "<p> </p>"])
    assert segmented.sentences == ["eins < zwei"]
    assert segmented.join(escape(["one < two"])) == ["one &lt; two", "", "<p> </p>"]


def test_malformed_markup_comes_back_byte_for_byte() -> None:
    texts = [
        '<a href="x>eins</a>',  # the quote never closes: all of it is one unfinished tag
        "<![CDATA[eins]]>",
        "<SCRIPT>x</SCRIPT> eins",
        "zwei <!-- never closed",
        "<P CLASS=a>drei</P >",
        "vier <br/> fünf&amp;",
    ]
    segmented = split_html(texts)
    assert segmented.sentences == ["eins", "zwei", "drei", "vier", "fünf&"]
    assert segmented.join(escape(segmented.sentences)) == [
        '<a href="x>eins</a>',
        "<![CDATA[eins]]>",
        "<SCRIPT>x</SCRIPT> eins",
        "zwei <!-- never closed",
        "<P CLASS=a>drei</P >",
        "vier <br/> fünf&amp;",
    ]
