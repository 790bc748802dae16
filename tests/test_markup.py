"""HTML input: the text between tags is translated, the markup comes back as it was."""

from serve.markup import escape, split_html

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
