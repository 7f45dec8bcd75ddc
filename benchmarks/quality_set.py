"""The labelled set of benchmarks/quality.py: good chat records and junk, all written here or
derived from what is written here by a seeded generator (the same set every run).

Good records are what real chat data holds and a filter must not drop: one-word turns,
questions, code, maths, markdown replies, and prompts in twelve languages (Chinese, Japanese
and Thai among them). Junk is what the filters are for, each kind labelled with the filter
meant to catch it (`target`), so that recall is per filter. `word_count` has no junk kind of
its own: at its bounds it is a guard (an empty reply is not junk here: 1,400 t0-prompts
records of one task have one, so the filter reads the prompt only).
"""

from __future__ import annotations

import random
import string
from typing import Any

SHORT = ["Thanks!", "ok", "yes please", "Can you say that again?", "lol", "?", "no", "Why?",
         "Go on.", "hmm, not sure", "Perfect, thank you so much!", "What do you mean?"]  # fmt: skip
QUESTIONS = [
    "What is the capital of Australia?",
    "How do I reset my router without losing my settings?",
    "Can you help me write an email to my landlord about a broken heater?",
    "What are some good vegetarian recipes for a dinner party of six?",
    "Explain the difference between weather and climate to a ten year old.",
    "Is it safe to leave a laptop charging overnight every night?",
    "Summarize the plot of Pride and Prejudice in three sentences.",
    "What should I pack for a week of hiking in the Scottish Highlands in May?",
    "How can I politely decline a wedding invitation from a coworker?",
    "Which is better for a beginner, a road bike or a hybrid bike?",
]
REPLIES = [
    "Sure! Here is a short draft you can adapt to your situation.",
    "The capital of Australia is Canberra, not Sydney as many people assume.",
    "It is generally safe: modern laptops stop charging when the battery is full.",
    "Great question. The short answer is that it depends on how you plan to use it.",
    None,
]
CODE = [
    "How do I reverse a list in Python? I tried `list.reverse()` but it returns None.",
    "Why does this fail?\n\n```python\nfor i in range(len(xs)):\n    if xs[i] == 0:\n"
    "        del xs[i]\n```",
    "Write a SQL query: SELECT name, count(*) FROM orders GROUP BY name HAVING count(*) > 5;",
    'Fix my JSON: {"name": "Ann", "age": 31, "tags": ["a", "b",]}',
    "In C, what does `for (int i = 0; i < n; i++) { a[i] = b[i] * 2; }` compile to?",
]
MATHS = ["What is 17 * 23?", "Solve 3x + 5 = 20 for x.", "Is 2^31 - 1 a prime number?",
         "Compute 1/3 + 1/6.", "What is the derivative of x^3 + 2x?"]  # fmt: skip
MARKDOWN = [
    "## Steps\n1. Preheat the oven to 200 C.\n2. Slice the potatoes thinly.\n"
    "3. Bake for 40 minutes.\n\n## Tips\n- Use waxy potatoes.\n- Salt generously.",
    "Here are three options:\n\n- **Option A**: cheaper, slower\n- **Option B**: balanced\n"
    "- **Option C**: fastest, most expensive\n\nI would pick B.",
]
FOREIGN = {
    "zh": ["请帮我写一封邮件给我的老板。", "今天天气怎么样？", "用Python写一个快速排序", "谢谢！"],
    "ja": ["東京で一番おいしいラーメン屋はどこですか？", "ありがとうございます",
           "この文を英語に翻訳してください。"],
    "th": ["ช่วยแปลประโยคนี้เป็นภาษาอังกฤษหน่อย", "วันนี้อากาศดีไหม", "ขอบคุณมากครับ"],
    "ko": ["서울에서 가볼 만한 곳을 추천해 주세요", "감사합니다"],
    "ru": ["Как приготовить борщ?", "Спасибо большое за помощь", "Объясни, как работает ипотека."],
    "ar": ["ما هي عاصمة مصر؟", "شكرا جزيلا", "كيف أتعلم البرمجة بسرعة؟"],
    "hi": ["मुझे दिल्ली में अच्छा होटल बताइए", "धन्यवाद", "भारत की राजधानी क्या है?"],
    "de": ["Wie spät ist es in Berlin?", "Kannst du mir bei meinen Hausaufgaben helfen?"],
    "es": ["¿Cuál es la mejor manera de aprender español?", "Gracias por tu ayuda"],
    "fr": ["Pouvez-vous m'expliquer la photosynthèse ?", "Merci beaucoup"],
    "pt": ["Qual é a melhor praia do Brasil?", "Muito obrigado pela ajuda"],
    "vi": ["Làm thế nào để nấu phở bò ngon?", "Cảm ơn bạn rất nhiều"],
}  # fmt: skip
SENTENCES = [
    "The meeting has been moved to Thursday afternoon because the room was double booked.",
    "Please remember to bring your own laptop and a charger to the workshop.",
    "Our new pricing starts next month and existing customers keep their current plan.",
    "The library closes early on public holidays, so plan your visit accordingly.",
]


def _good() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for i, text in enumerate(SHORT + QUESTIONS + CODE + MATHS):
        rows.append({"prompt": text, "response": REPLIES[i % len(REPLIES)], "lang": "en"})
    for text in MARKDOWN:
        rows.append({"prompt": "Give me a recipe, formatted nicely.", "response": text,
                     "lang": "en"})  # fmt: skip
    for lang, texts in FOREIGN.items():
        rows += [{"prompt": t, "response": None, "lang": lang} for t in texts]
    for i, a in enumerate(SENTENCES):  # longer, multi-sentence prompts
        b = SENTENCES[(i + 1) % len(SENTENCES)]
        rows.append({"prompt": f"Rewrite this more formally:\n\n{a} {b}", "response": f"{b} {a}",
                     "lang": "en"})  # fmt: skip
    return [{**r, "label": "good", "target": None, "kind": "good"} for r in rows]


def _junk(rng: random.Random) -> list[dict[str, Any]]:
    b64 = string.ascii_letters + string.digits + "+/"

    def blob(n: int) -> str:
        return "".join(rng.choice(b64) for _ in range(n))

    kinds: list[tuple[str, str, Any]] = [
        ("base64_blob", "mean_word_length",
         lambda: (f"decode {blob(rng.randint(60, 200))} {blob(40)}", None)),
        ("hex_dump", "mean_word_length",
         lambda: (" ".join(blob(rng.randint(30, 50)) for _ in range(4)), None)),
        ("letter_spam", "mean_word_length",
         lambda: (" ".join(rng.choice("abcxyz") for _ in range(rng.randint(8, 30))), None)),
        ("phrase_loop", "top_ngram",
         lambda: (rng.choice(QUESTIONS), " ".join([rng.choice(
             ["I'm sorry,", "buy now", "click here", "as an AI"])] * rng.randint(8, 40)))),
        ("repeated_passage", "dup_ngram",
         lambda: ((" ".join(rng.sample(SENTENCES, 2)) + " ") * rng.randint(3, 6), None)),
        ("repeated_lines", "repeated_lines",
         lambda: ("\n".join([rng.choice(SENTENCES)] * rng.randint(3, 8) + [rng.choice(SHORT)]),
                  None)),
        ("hashtag_spam", "symbol_ratio",
         lambda: (" ".join(f"#{rng.choice(['sale', 'win', 'free', 'ad', 'promo'])}"
                           for _ in range(rng.randint(5, 20))), None)),
        ("ellipsis_spam", "symbol_ratio",
         lambda: (" ".join(rng.choice(["so...", "well...", "um...", "..."])
                           for _ in range(rng.randint(5, 15))), None)),
        ("symbol_junk", "non_alpha",
         lambda: (" ".join("".join(rng.choice("!?$%&*@#~^|<>=+-") for _ in range(4))
                           for _ in range(rng.randint(4, 12))), None)),
        ("ascii_art", "non_alpha",
         lambda: ("\n".join("".join(rng.choice(" /\\|_-*") for _ in range(20))
                            for _ in range(5)) + " (o_o)", None)),
    ]  # fmt: skip
    rows = []
    for kind, target, make in kinds:
        for _ in range(12):
            prompt, response = make()
            rows.append({"prompt": prompt, "response": response, "lang": None, "label": "junk",
                         "target": target, "kind": kind})  # fmt: skip
    return rows


def labelled_set(seed: int = 12) -> list[dict[str, Any]]:
    """Good and junk records, the same for the same seed."""
    return _good() + _junk(random.Random(seed))
