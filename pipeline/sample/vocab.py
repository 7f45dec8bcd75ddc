# ruff: noqa: E501 (templates read best unbroken)
"""Word lists and templates for the bundled sample: several phrasings per task so a model has
something to learn, with shared openers, closers and cross-task wording so it is not trivial."""

from __future__ import annotations

# Wording any task may start or end with: shared tokens keep a bag-of-words probe honest.
OPENERS = (
    "",
    "",
    "",
    "Hi,",
    "Hello!",
    "Quick question:",
    "Please help.",
    "Hey there,",
    "I need some help.",
    "Good morning.",
    "Sorry to bother you, but",
    "Can you help me with something?",
)
CLOSERS = (
    "",
    "",
    "",
    "Thanks!",
    "Thank you.",
    "Keep it short.",
    "Be as clear as you can.",
    "Appreciate it.",
    "This is urgent.",
    "Explain your reasoning.",
    "No rush.",
)

# A small grammar for filler sentences: passages to summarise, ticket details, stories.
SUBJECTS = (
    "The committee",
    "A local bakery",
    "The new manager",
    "Our neighbour",
    "The city council",
    "A small startup",
    "The research team",
    "My sister",
    "The school board",
    "A delivery driver",
    "The museum",
    "The football club",
    "An old friend",
    "The hospital",
    "The library",
    "A young farmer",
    "The airline",
    "The orchestra",
    "The weather service",
    "A group of volunteers",
)
VERBS = (
    "announced",
    "postponed",
    "rejected",
    "celebrated",
    "investigated",
    "quietly changed",
    "finally approved",
    "struggled with",
    "published",
    "questioned",
    "redesigned",
    "cancelled",
    "praised",
    "reviewed",
    "expanded",
    "funded",
)
OBJECTS = (
    "the spring festival",
    "a plan to repair the old bridge",
    "the opening hours",
    "a new recycling scheme",
    "the annual budget",
    "a study on sleep and memory",
    "the winter timetable",
    "a proposal for more bike lanes",
    "the price of season tickets",
    "a rescue project for the river",
    "the staff training programme",
    "a campaign against food waste",
    "the parking rules",
    "a community garden",
    "the science exhibition",
    "a survey of local shops",
    "the emergency procedures",
    "a partnership with two universities",
)
ADVERBIALS = (
    "after weeks of debate",
    "despite strong criticism",
    "earlier this month",
    "to the surprise of many residents",
    "without much warning",
    "for the third year in a row",
    "following a long review",
    "in response to complaints",
    "ahead of the holiday season",
    "with support from local businesses",
    "at a meeting on Tuesday",
    "after the storm last winter",
    "because costs had doubled",
    "while the director was away",
)

CODING_LANGS = (
    "Python",
    "JavaScript",
    "TypeScript",
    "Rust",
    "Go",
    "Java",
    "C++",
    "SQL",
    "Bash",
    "Kotlin",
)
CODING_TASKS = (
    "reverse a linked list",
    "parse a CSV file with quoted fields",
    "read a large file line by line",
    "retry an HTTP request with exponential backoff",
    "merge two sorted arrays",
    "find duplicate rows in a table",
    "debounce a function",
    "validate an email field in a form",
    "compute a moving average",
    "flatten a nested dictionary",
    "sort objects by two keys",
    "memoize a recursive function",
    "stream rows from a database cursor",
    "group records by date",
    "count word frequencies in a text",
    "walk a directory tree recursively",
    "serialise a class to JSON",
    "rate-limit calls to an API",
)
CODING_ERRORS = (
    "IndexError: list index out of range",
    "TypeError: undefined is not a function",
    "NullPointerException",
    "segmentation fault (core dumped)",
    "borrowed value does not live long enough",
    "KeyError: 'user_id'",
    "deadlock detected",
    "ModuleNotFoundError: No module named 'yaml'",
    "stack overflow",
    "syntax error near unexpected token",
)
CODING_PROMPTS = (
    "{opener} How do I {task} in {lang}? {closer}",
    "{opener} Write a {lang} function to {task}. {closer}",
    "My {lang} code fails with `{error}` when I try to {task}. What is wrong?",
    "What is the idiomatic way to {task} in {lang}? I am on version {version}.",
    "{opener} Can you review this approach: I {task_past} using a loop in {lang}. Is there a faster way? {closer}",
    "Explain step by step how to {task} in {lang}, with a short example.",
    "I keep getting `{error}` in {lang}. It started after I upgraded to release {version}. {closer}",
    "Refactor my {lang} snippet so that it can {task} without global state.",
    "Which {lang} library should I use to {task}? {closer}",
    "Write unit tests in {lang} for a function that should {task}.",
    "{opener} Port this {lang_b} snippet to {lang}: it is meant to {task}.",
    "Why is my {lang} program slow when I {task_past} for 1,000,000 items?",
)
CODING_RESPONSES = (
    "In {lang}, the simplest way to {task} is to keep the logic in one small function. {filler} Test it with an empty input first.",
    "Here is a sketch:\n\n    def solve(items):\n        # {task}\n        return sorted(items)\n\nThe error `{error}` usually means the input is not what you expect.",
    "Use the standard library where you can. To {task}, iterate once and keep state in a local variable. {filler}",
    "The problem is usually an off-by-one mistake. Check the loop bounds, then {task} in a separate helper so you can test it. {filler}",
    "A common pattern in {lang} is to write a generator for this. It lets you {task} without loading everything into memory.",
)

MATH_TOPICS = (
    "derivative",
    "integral",
    "limit",
    "eigenvalues",
    "probability",
    "expected value",
    "standard deviation",
    "prime factorisation",
    "greatest common divisor",
    "quadratic equation",
    "geometric series",
    "binomial coefficient",
)
MATH_PROMPTS = (
    "{opener} What is {a} times {b}? {closer}",
    "Solve for x: {a}x + {b} = {c}.",
    "Compute the {topic} of f(x) = {a}x^2 + {b}x - {c}.",
    "{opener} If a train travels {a} km in {b} hours, what is its average speed? {closer}",
    "What is the {topic} here: a fair die is rolled {a} times and we count the sixes?",
    "Prove that the sum of the first {a} odd numbers is a perfect square.",
    "Find the {topic} of {a} and {b}. Show your work.",
    "A shirt costs ${a}.99 and is discounted by {b}%. What is the final price?",
    "Explain the {topic} to a high-school student using the numbers {a} and {b}.",
    "Evaluate {a} + {b} * {c} - {a} / 2 and explain the order of operations.",
    "In {year}, a town had {a},{b}00 people and grew by {c}% a year. How many people after 3 years?",
    "{opener} Is {a}{b}{c} divisible by 3? Explain the rule. {closer}",
)
MATH_RESPONSES = (
    "Start from the definition of the {topic}. With the numbers given, the answer is {r}. {filler}",
    "Step 1: write the equation. Step 2: isolate x. The result is x = {r}.",
    "Multiply first, then add: the value is {r}. Order of operations matters here.",
    "Using the formula for the {topic}, we get {r}. You can check it by substituting back.",
    "The answer is {r}. A quick sanity check: the value should grow with {a}, and it does.",
)

SUPPORT_ITEMS = (
    "order",
    "parcel",
    "subscription",
    "refund",
    "invoice",
    "account",
    "password reset",
    "delivery",
    "warranty claim",
    "gift card",
    "return label",
    "loyalty points",
)
SUPPORT_PROBLEMS = (
    "arrived damaged",
    "never arrived",
    "was charged twice",
    "shows the wrong address",
    "was cancelled without notice",
    "is stuck in processing",
    "has the wrong size",
    "expired too early",
    "cannot be found in my account",
    "was delivered to a neighbour",
)
SUPPORT_PROMPTS = (
    "{opener} My {item} {problem}. Order number {order}. What can I do? {closer}",
    "Hello, I would like a refund because my {item} {problem}. {filler} {closer}",
    "Why was I charged ${price} for my {item}? It {problem}.",
    "{opener} I have been waiting since {date} and my {item} {problem}. {filler}",
    "How do I change the address on my {item}? The tracking page says it {problem}.",
    "Can I cancel my {item}? It {problem} and I no longer need it. {closer}",
    "The app logs me out every time I open my {item} page. {filler} Please fix this.",
    "I was promised a call back about my {item} (ticket {order}) but nobody called. {closer}",
    "{opener} Your website says my {item} {problem}, but the courier says otherwise. Who is right?",
    "Complaint: my {item} {problem}, and the chat assistant closed my request. {filler}",
)
SUPPORT_RESPONSES = (
    "I am sorry to hear that your {item} {problem}. I have opened a case and you will receive an update within 48 hours. {filler}",
    "Thanks for reaching out. Please reply with a photo of the {item} and we will arrange a replacement or a refund.",
    "I have checked your {item}: it {problem} because of a carrier delay. A refund of ${price} has been issued.",
    "You can manage your {item} from the account page under Orders. If it {problem}, choose Report a problem.",
    "We apologise for the trouble. {filler} Your {item} has been escalated to our logistics team.",
)

WRITING_FORMS = (
    "short story",
    "poem",
    "cover letter",
    "blog post",
    "product description",
    "wedding toast",
    "limerick",
    "speech",
    "newsletter intro",
    "haiku",
    "LinkedIn post",
    "fairy tale",
)
WRITING_THEMES = (
    "a lighthouse keeper",
    "the first day of spring",
    "a lost umbrella",
    "moving to a new city",
    "a robot learning to paint",
    "an old bicycle",
    "friendship",
    "a rainy Sunday",
    "a job at a bakery",
    "the last train home",
    "a garden in winter",
    "a cat who hates Mondays",
)
WRITING_TONES = ("funny", "warm", "formal", "melancholic", "upbeat", "mysterious", "dry")
WRITING_PROMPTS = (
    "{opener} Write a {tone} {form} about {theme}. {closer}",
    "Compose a {form} about {theme}, no longer than {n} words.",
    "Can you draft a {tone} {form} for my friend? The theme is {theme}.",
    "{opener} I need a {form} about {theme} in a {tone} tone. {closer}",
    "Rewrite this as a {tone} {form}: {filler}",
    "Give me three opening lines for a {form} about {theme}.",
    "Help me write a {form}. It should mention {theme} and feel {tone}.",
    "Write a {form} from the point of view of {theme}.",
    "Make this {form} more {tone}: {filler}",
)
WRITING_RESPONSES = (
    "Here is a {tone} {form}:\n\n{filler} {filler2}",
    "Title: {theme_title}\n\n{filler} {filler2} {filler3}",
    "Sure. {filler} {filler2}\n\nLet me know if you want it shorter or more {tone}.",
    "{filler} {filler2} And that is how {theme} changed everything.",
)

TRANSLATION_LANGS = (
    "French",
    "Spanish",
    "German",
    "Italian",
    "Portuguese",
    "Dutch",
    "Japanese",
    "Polish",
)
TRANSLATION_PHRASES = (
    ("Where is the train station?", "Où est la gare ?"),
    ("I would like a coffee, please.", "Quisiera un café, por favor."),
    ("The meeting is moved to Thursday.", "Das Treffen wird auf Donnerstag verschoben."),
    ("Thank you for your patience.", "Grazie per la vostra pazienza."),
    ("The invoice is attached.", "A fatura está em anexo."),
    ("Can we reschedule our call?", "Kunnen we ons gesprek verzetten?"),
    ("Good luck with the exam!", "試験頑張ってください！"),
    ("The shop opens at nine.", "Sklep jest otwarty od dziewiątej."),
    ("My luggage did not arrive.", "Mes bagages ne sont pas arrivés."),
    ("How much does this cost?", "¿Cuánto cuesta esto?"),
    ("We are closed on Sundays.", "Sonntags haben wir geschlossen."),
    ("Please sign both copies.", "Si prega di firmare entrambe le copie."),
    ("The weather is lovely today.", "O tempo está ótimo hoje."),
    ("I am allergic to peanuts.", "Ik ben allergisch voor pinda's."),
)
TRANSLATION_PROMPTS = (
    '{opener} Translate into {lang}: "{src}" {closer}',
    'How do you say "{src}" in {lang}?',
    "Translate this sentence to {lang}, keeping a formal register: {src}",
    'What does "{dst}" mean in English?',
    "{opener} Please translate the following to {lang} for an email: {src} {filler}",
    'Is this a correct {lang} translation of "{src}": "{dst}"?',
    'Give me a casual and a polite way to say "{src}" in {lang}.',
    "Translate from English to {lang} and explain any tricky word: {src}",
)
TRANSLATION_RESPONSES = (
    'In {lang}: "{dst}"',
    'A natural translation is "{dst}". In a formal letter you might phrase it slightly differently.',
    'It means "{src}". The word order differs from English.',
    'Polite: "{dst}". Casual speech would drop the courtesy form.',
    '"{dst}" works well. Note that {lang} often uses a different verb here.',
)

SUMMARY_PROMPTS = (
    "{opener} Summarise this in one sentence: {passage}",
    "TL;DR please: {passage}",
    "Give me three bullet points summarising the following text. {passage}",
    "Summarize the article below for a busy executive.\n\n{passage}",
    "{opener} What are the key points of this paragraph? {passage} {closer}",
    "Condense this meeting note into two sentences: {passage}",
    "Write a headline and a one-line summary for: {passage}",
)
SUMMARY_RESPONSES = (
    "In short: {first}",
    "Key points:\n- {first}\n- {second}\n- Reactions were mixed.",
    "Summary: {first} The rest of the text gives background.",
    "Headline: {headline}\nSummary: {first}",
)

QA_FACTS = (
    ("What is the capital of Australia?", "Canberra is the capital of Australia."),
    ("Who wrote Pride and Prejudice?", "Jane Austen wrote Pride and Prejudice, published in 1813."),
    ("How far is the Moon from the Earth?", "On average about 384,400 km."),
    (
        "Why is the sky blue?",
        "Sunlight is scattered by air molecules, and blue light scatters most.",
    ),
    ("When did the Berlin Wall fall?", "The Berlin Wall fell in November 1989."),
    (
        "What is photosynthesis?",
        "Plants turn light, water and carbon dioxide into sugar and oxygen.",
    ),
    ("How many bones are in the human body?", "An adult has 206 bones."),
    ("What causes the seasons?", "The tilt of the Earth's axis, not the distance to the Sun."),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci painted it in the early 1500s."),
    ("What is the boiling point of water at sea level?", "100 degrees Celsius, or 212 Fahrenheit."),
    ("What is the largest ocean?", "The Pacific Ocean is the largest."),
    ("How do vaccines work?", "They train the immune system to recognise a pathogen."),
    ("What is inflation?", "A general rise in prices, which lowers what money can buy."),
    ("Which planet has the most moons?", "Saturn, with well over one hundred known moons."),
    ("What is the speed of light?", "About 299,792 km per second in a vacuum."),
    ("Who discovered penicillin?", "Alexander Fleming, in 1928."),
)
QA_PROMPTS = (
    "{opener} {question} {closer}",
    "Quick fact check: {question}",
    "{question} Please answer in one line.",
    "My kid asked me this and I did not know: {question}",
    "{opener} I read that {claim}. {question}",
    "Trivia night tomorrow. {question} {closer}",
    "Settle a debate: {question}",
    "Can you explain simply: {question}",
)
QA_RESPONSES = (
    "{answer}",
    "{answer} {filler}",
    "Short answer: {answer}",
    "Good question. {answer} Many people get this wrong.",
)

# Follow-up turns of a session: they reuse the first turn's words so they stay on topic.
FOLLOW_UPS = (
    "Thanks. Can you make it shorter and mention {word}?",
    "That does not work for me. What about {word}?",
    "Great, now do the same for {word}.",
    "Could you explain the part about {word} in more detail?",
    "Can you give a second example, this time with {word}?",
    "Perfect. One more thing: how does this relate to {word}?",
)
FOLLOW_UP_RESPONSES = (
    "Of course. Focusing on {word}: {filler}",
    "Here is a shorter version that mentions {word}. {filler}",
    "With {word} the idea is the same. {filler}",
    "Sure. {filler} That covers {word}.",
)

TAGS_BY_LABEL = {
    "coding": ("programming", "debugging", "python", "web", "backend"),
    "math": ("homework", "algebra", "calculus", "statistics", "arithmetic"),
    "support": ("billing", "shipping", "account", "complaint", "refund"),
    "writing": ("creative", "poetry", "business", "story", "editing"),
    "translation": ("language", "french", "spanish", "german", "localisation"),
    "summarization": ("news", "meeting", "tldr", "report", "digest"),
    "qa": ("trivia", "science", "history", "geography", "general"),
}
COMMON_TAGS = ("urgent", "follow-up", "reviewed", "flagged", "needs-label", "beta")

# Entities for generated factual questions: many distinct questions without a long fact list.
CITIES = (
    "Lyon",
    "Porto",
    "Kraków",
    "Osaka",
    "Denver",
    "Nairobi",
    "Valparaíso",
    "Tampere",
    "Ghent",
    "Adelaide",
    "Bergen",
    "Córdoba",
    "Halifax",
    "Dundee",
    "Leipzig",
    "Bologna",
)
QA_ENTITY_PROMPTS = (
    ("What is the population of {city}?", "Roughly {n},000 people live in {city}."),
    ("How old is the cathedral in {city}?", "It was finished about {n} years ago."),
    ("What is {city} best known for?", "{city} is known for its {thing}."),
    ("Is {city} worth visiting in winter?", "Yes, mostly for the {thing}, but pack warm clothes."),
    ("Which river runs through {city}?", "A river locals call the {thing} river."),
    ("How far is {city} from the coast?", "About {n} km by road."),
)
THINGS = (
    "old harbour",
    "food market",
    "jazz festival",
    "university",
    "botanical garden",
    "street art",
    "football club",
    "tram network",
    "castle",
    "wine bars",
)
