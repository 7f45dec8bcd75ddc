"""Tokens for every script: the Python rule, the compiled shingle kernel, keyword terms."""

from __future__ import annotations

import itertools
import random
import unicodedata

import numpy as np
import pytest

from pipeline.dedup.minhash import similar_pairs
from pipeline.dedup.near_settings import NearDupSettings
from pipeline.dedup.normalize import normalize
from pipeline.dedup.shingles import _word_tokens
from pipeline.text.marks import UNIDATA_VERSION, mark_ranges
from pipeline.text.tokens import (
    NO_SPACE_RANGES,
    _terms_any_script,
    is_no_space,
    keyword_terms,
    shingle_tokens,
)

_MASK = (1 << 64) - 1


def _mix(x: int) -> int:
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def _reference_hashes(text: str, seed: int) -> list[int]:
    """What the kernel must compute: FNV-1a of each reference token's UTF-8, mixed."""
    out = []
    for token in shingle_tokens(text):
        h = 0xCBF29CE484222325
        for byte in token.encode("utf-8", "surrogatepass"):
            h = ((h ^ byte) * 0x100000001B3) & _MASK
        out.append(_mix(h ^ seed))
    return out


def test_shingle_tokens_cut_out_characters_of_scripts_without_spaces() -> None:
    assert shingle_tokens("我的快递 延误了") == ["我", "的", "快", "递", "延", "误", "了"]
    assert shingle_tokens("用Python写代码,好吗") == [
        "用",
        "Python",
        "写",
        "代",
        "码",
        ",",
        "好",
        "吗",
    ]
    assert shingle_tokens("東京に行く") == ["東", "京", "に", "行", "く"]
    assert shingle_tokens("ภาษา ไทย") == ["ภ", "า", "ษ", "า", "ไ", "ท", "ย"]
    # Spaced scripts: exactly str.split(), punctuation attached, as before.
    for text in ("hello, world!  again", "Привет, мир", "مرحبا بالعالم", "crème brûlée\u3000ok"):
        assert shingle_tokens(text) == text.split()


def test_kernel_tokens_equal_the_python_rule_on_random_mixed_scripts() -> None:
    rng = random.Random(0)
    alphabet = (
        "ab Z9 你好世界東京にカタカナภาษาไทยລາວខ្មែរမြန်мирعربيहिन्दी \t\n\u3000\u00a0\u2003\u0085"
        "é\U00020001\U0001f600,。ー々\u0e3f\u17d4\u104b\x1c\ud800"
    )
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))) for _ in range(2000)]
    texts += ["", "我", "hello", "a我b", "我 "]
    tokens, offsets = _word_tokens(texts, np.uint64(7))
    for i, text in enumerate(texts):
        got = [int(h) for h in tokens[offsets[i] : offsets[i + 1]]]
        assert got == _reference_hashes(text, 7), text


@pytest.mark.parametrize(
    ("base", "changed"),
    [
        ("我上周在网店买了一台咖啡机，页面显示三天送达，可是已经过了一个星期，快递延误得太厉害了，"
         "物流信息也一直没有更新。请问包裹到底在哪里？如果再收不到，我想申请退款，谢谢你们的帮助。",
         ("咖啡机", "咖啡壶"), ),
        ("先月購入したノートパソコンの電源が入らなくなりました。充電ケーブルを差し込んでもランプが"
         "点灯せず、ボタンを長押ししても反応がありません。保証期間内なので修理をお願いしたいです。",
         ("先月", "今月")),
        ("สวัสดีครับ ผมสั่งซื้อรองเท้าวิ่งจากร้านของคุณเมื่อสัปดาห์ที่แล้ว แต่ได้รับสินค้าผิดขนาด "
         "ผมสั่งไซซ์สี่สิบสองแต่ได้ไซซ์สี่สิบ อยากทราบว่าจะเปลี่ยนสินค้าได้อย่างไรครับ",
         ("สี่สิบสอง", "สี่สิบสาม")),
    ],
)  # fmt: skip
def test_two_changed_characters_are_near_duplicates_in_scripts_without_spaces(
    base: str, changed: tuple[str, str]
) -> None:
    copy = base.replace(*changed, 1)
    assert copy != base and sum(a != b for a, b in zip(base, copy, strict=False)) <= 2
    settings = NearDupSettings(threshold=0.8)
    left, right, sims = similar_pairs([normalize(base), normalize(copy)], settings)
    assert (left.tolist(), right.tolist()) == ([0], [1]) and sims[0] >= 0.8


def test_keyword_terms_per_script() -> None:
    assert keyword_terms("Hello, World_x! 42") == ["hello", "world_x", "42"]
    assert keyword_terms("快递延误") == ["快递", "递延", "延误"]
    assert keyword_terms("猫") == ["猫"]  # a one-character run is its own term
    assert keyword_terms("用Python写") == ["用", "python", "写"]
    assert keyword_terms("東京に") == ["東京", "京に"]
    assert keyword_terms("ไทย") == ["ไท", "ทย"]
    assert keyword_terms("ที่ดี") == ["ที่ดี"]  # a letter carries its vowel and tone marks
    assert keyword_terms("Straße ＡＢＣ ﬁne") == ["strasse", "abc", "fine"]  # NFKC, casefold
    # Words run through combining marks (\w alone cut Hindi into single letters).
    assert keyword_terms("हिन्दी كَتَبَ") == ["हिन्दी", "كَتَبَ"]
    assert keyword_terms("Привет мир") == ["привет", "мир"]
    assert keyword_terms("x" * 41 + " ok") == ["ok"]  # not a word: base64, glued URLs
    assert keyword_terms("。，！ ฿ ៛") == []  # punctuation and currency are not terms


def test_keyword_terms_of_ascii_equal_the_old_word_pattern() -> None:
    """English is tokenized exactly as before (lower-cased \\b\\w{1,40}\\b), by the ASCII
    shortcut and by the any-script rule alike."""
    import re

    old = re.compile(r"(?u)\b\w{1,40}\b")
    rng = random.Random(1)
    for _ in range(500):
        text = "".join(rng.choice("aZ9_ .,-'\n") for _ in range(rng.randint(0, 80)))
        text += " " + "q" * rng.randint(38, 42)
        expected = old.findall(text.lower())
        assert keyword_terms(text) == _terms_any_script(text.lower()) == expected, text


def test_no_space_ranges_are_sorted_disjoint_and_letters() -> None:
    assert list(NO_SPACE_RANGES) == sorted(NO_SPACE_RANGES)
    assert all(lo <= hi < nxt for (lo, hi), (nxt, _) in itertools.pairwise(NO_SPACE_RANGES))
    assert all(lo >= 0x800 for lo, _ in NO_SPACE_RANGES)  # 3+ UTF-8 bytes: the kernel's premise
    assert is_no_space("快") and is_no_space("ー") and not is_no_space("a")
    assert not is_no_space("。") and not is_no_space("\u3000") and not is_no_space("한")


@pytest.mark.skipif(
    unicodedata.unidata_version != UNIDATA_VERSION, reason="another Unicode version"
)
def test_mark_list_equals_unicodedata() -> None:
    points = [p for p in range(0x110000) if unicodedata.category(chr(p))[0] == "M"]
    listed = [p for lo, hi in mark_ranges() for p in range(lo, hi + 1)]
    assert listed == points


def test_the_plain_shortcut_equals_the_full_rule() -> None:
    """Text with no no-space-script character and no mark skips the full rule's regex."""
    from pipeline.text.tokens import fold

    rng = random.Random(2)
    alphabets = ("aé Ωß_9.,Жж-\n", "aé 快递ि\u0301ที่ Ж,", "Ⅻ ＡＢ ﬁ İ ǅ x")
    for _ in range(1500):
        text = "".join(rng.choice(rng.choice(alphabets)) for _ in range(rng.randint(0, 60)))
        assert keyword_terms(text) == _terms_any_script(fold(text)), text
