"""Which texts are blank: nothing but whitespace and characters that render as nothing."""

from __future__ import annotations

import re
import unicodedata

# Unicode's default-ignorable code points that are not format (Cf) characters: the
# combining grapheme joiner, Hangul fillers, Khmer inherent vowels, variation selectors
# and the reserved ranges around them (DerivedCoreProperties.txt, Default_Ignorable_Code_Point).
_IGNORABLE = re.compile(
    "[\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u2065\u3164\ufe00-\ufe0f\uffa0"
    "\ufff0-\ufff8\U000e0000-\U000e0fff]"
)
# Format characters that are visible: prepended concatenation marks such as the Arabic
# number sign carry a glyph (Unicode leaves them out of Default_Ignorable_Code_Point).
_VISIBLE_FORMAT = frozenset(
    "\u0600\u0601\u0602\u0603\u0604\u0605\u06dd\u070f\u0890\u0891\u08e2\U000110bd\U000110cd"
)


def is_invisible(char: str) -> bool:
    """Whitespace, a control or format character, or another default-ignorable code point."""
    if char.isspace():
        return True
    category = unicodedata.category(char)
    if category == "Cc" or (category == "Cf" and char not in _VISIBLE_FORMAT):
        return True
    return _IGNORABLE.match(char) is not None


def is_blank(text: str) -> bool:
    """Whether `text` has no visible character (U+200B, U+FEFF, soft hyphens, spaces...)."""
    # Stops at the first visible character: the first one, for almost every real text.
    return all(map(is_invisible, text))
