"""A labelled set for secrets redaction, generated deterministically (same seed, same set).

Real-format fake secrets (the documented prefixes, lengths and alphabets of AWS, GitHub,
GitLab, Slack, Stripe, OpenAI, Anthropic and Google keys; JWTs with real JSON headers; PEM
blocks; passwords in assignments, prose, URLs and database connection strings) are embedded
in prompt/response-like text: questions about code, .env files, curl commands, JSON configs,
logs. Look-alikes that must stay are embedded the same way: git SHAs, sha256/md5 hex,
UUIDs, base64 image data, npm integrity hashes, ids in URLs, public keys and certificates,
placeholders (`sk-...`, YOUR_API_KEY, AKIAXXXX..., `password: ********`), and code that
reads a secret instead of holding one.

    examples(seed=0, per_kind=12) -> [{"text", "spans": [{start, end, type}], "kind"}]

Written by the author of the rules, so recall on it is an upper bound for ours; precision
on real data (t0-prompts, hh-rlhf) is measured separately by benchmarks/secrets_redaction.py.
"""

from __future__ import annotations

import base64
import json
import random
import string
import uuid
from collections.abc import Callable

ALNUM = string.ascii_letters + string.digits
UPPER_NUM = string.ascii_uppercase + string.digits
URLSAFE = ALNUM + "-_"
B64 = ALNUM + "+/"

# Where a value sits: {v} is the secret (or look-alike) value.
CONTEXTS = (
    "I keep getting 401 errors. Here is my config:\n{v}\nWhat is wrong?",
    "```\n{v}\n```\nCan you tell me why this fails on startup?",
    "Sure! Put this in your .env file:\n\n{v}\n\nThen restart the server.",
    "log output: [2024-03-02 10:14:07] INFO connecting with {v} ... done",
    "Why does `{v}` not work in production but works locally?",
    "Here's the snippet from my notebook: {v} -- it worked yesterday.",
)


def _rand(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _password(rng: random.Random) -> str:
    words = ("Summer", "Dragon", "Monkey", "Sunshine", "Falcon", "Purple", "Winter", "Tiger")
    shapes = (
        lambda: f"{rng.choice(words)}{rng.randint(1970, 2025)}{rng.choice('!#@&*')}",
        lambda: _rand(rng, ALNUM + "!@#%^&*", rng.randint(10, 16)),
        lambda: f"{rng.choice(words).lower()}{rng.randint(1, 99)}",
    )
    return rng.choice(shapes)()


def _pem_body(rng: random.Random, lines: int) -> str:
    return "\n".join(_rand(rng, B64, 64) for _ in range(lines)) + "\n" + _rand(rng, B64, 20) + "=="


# ---- secrets: each returns (line, [(start, end, type)]) -------------------------------
Maker = Callable[[random.Random], tuple[str, list[tuple[int, int, str]]]]


def _value(prefix: str, value: str, kind: str, suffix: str = "") -> tuple[str, list]:
    return prefix + value + suffix, [(len(prefix), len(prefix) + len(value), kind)]


def _aws(rng: random.Random) -> tuple[str, list]:
    if rng.random() < 0.6:
        key = rng.choice(("AKIA", "ASIA")) + _rand(rng, UPPER_NUM, 16)
        return _value(
            rng.choice(("AWS_ACCESS_KEY_ID=", "aws_access_key_id = ", "key ")), key, "aws_key"
        )
    key = _rand(rng, B64, 40)
    return _value(
        rng.choice(("aws_secret_access_key = ", "AWS_SECRET_ACCESS_KEY=")), key, "aws_key"
    )


def _github(rng: random.Random) -> tuple[str, list]:
    if rng.random() < 0.75:
        tok = f"gh{rng.choice('pousr')}_" + _rand(rng, ALNUM, 36)
    else:
        tok = "github_pat_" + _rand(rng, ALNUM, 22) + "_" + _rand(rng, ALNUM, 59)
    pre = rng.choice(("GITHUB_TOKEN=", "git clone https://", "Authorization: token ", "token: "))
    suf = "@github.com/acme/app.git" if pre.startswith("git clone") else ""
    return _value(pre, tok, "token", suf)


def _gitlab_slack(rng: random.Random) -> tuple[str, list]:
    r = rng.random()
    if r < 0.35:
        return _value("GITLAB_TOKEN=", "glpat-" + _rand(rng, URLSAFE, 20), "token")
    if r < 0.7:
        ids = f"{_rand(rng, string.digits, 12)}-{_rand(rng, string.digits, 13)}"
        tok = f"xox{rng.choice('bp')}-{ids}-{_rand(rng, ALNUM, 24)}"
        return _value("SLACK_BOT_TOKEN=", tok, "token")
    path = f"T{_rand(rng, UPPER_NUM, 8)}/B{_rand(rng, UPPER_NUM, 10)}/{_rand(rng, ALNUM, 24)}"
    hook = f"https://hooks.slack.com/services/{path}"
    return _value("webhook_url: ", hook, "token")


def _bearer(rng: random.Random) -> tuple[str, list]:
    if rng.random() < 0.5:
        tok = _rand(rng, URLSAFE, rng.randint(32, 64))
        return _value(
            "curl -H 'Authorization: Bearer ", tok, "token", "' https://api.acme.io/v1/me"
        )
    tok = _rand(rng, ALNUM, rng.randint(24, 48))
    pre = rng.choice(('"access_token": "', "ACCESS_TOKEN='", 'refresh_token = "'))
    return _value(pre, tok, "token", pre[-1])


def _api_key(rng: random.Random) -> tuple[str, list]:
    r = rng.random()
    if r < 0.2:
        key = f"sk_{rng.choice(('live', 'test'))}_" + _rand(rng, ALNUM, rng.choice((24, 99)))
        pre = "stripe.api_key = '"
    elif r < 0.4:
        key = "sk-proj-" + _rand(rng, URLSAFE, rng.choice((48, 74, 156)))
        pre = "OPENAI_API_KEY="
    elif r < 0.5:
        key = "sk-" + _rand(rng, ALNUM, 20) + "T3BlbkFJ" + _rand(rng, ALNUM, 20)
        pre = "openai.api_key = '"
    elif r < 0.65:
        key = "sk-ant-api03-" + _rand(rng, URLSAFE, 93) + "AA"
        pre = "client = anthropic.Anthropic(api_key='"
    elif r < 0.8:
        key = "AIza" + _rand(rng, URLSAFE, 35)
        pre = "https://maps.googleapis.com/maps/api/geocode/json?address=Paris&key="
    else:
        key = (
            _rand(rng, string.hexdigits.lower()[:16], 32)
            if rng.random() < 0.5
            else _rand(rng, ALNUM, 40)
        )
        pre = rng.choice(('"api_key": "', "API_SECRET=", "client_secret: '", 'SENDGRID_API_KEY="'))
    quote = "'" if pre.endswith("'") else '"' if pre.endswith('"') else ""
    return _value(pre, key, "api_key", quote + (")" if "Anthropic(" in pre else ""))


def _jwt(rng: random.Random) -> tuple[str, list]:
    header = {"alg": rng.choice(("HS256", "RS256")), "typ": "JWT"}
    payload = {
        "sub": str(rng.randint(10**6, 10**9)),
        "name": "Jo",
        "iat": rng.randint(1.6e9, 1.8e9),
    }
    tok = ".".join((_b64url(json.dumps(header).encode()), _b64url(json.dumps(payload).encode()),
                    _b64url(rng.randbytes(32))))  # fmt: skip
    return _value(
        rng.choice(("Authorization: Bearer ", "my session cookie is ", "jwt=")), tok, "jwt"
    )


def _private_key(rng: random.Random) -> tuple[str, list]:
    kind = rng.choice(("RSA ", "EC ", "OPENSSH ", "", "ENCRYPTED "))
    body = _pem_body(rng, rng.randint(4, 12))
    block = f"-----BEGIN {kind}PRIVATE KEY-----\n{body}\n-----END {kind}PRIVATE KEY-----"
    if rng.random() < 0.2:  # pasted with escaped newlines, as in a JSON service-account file
        block = block.replace("\n", "\\n")
        return _value('"private_key": "', block, "private_key", '\\n",')
    return _value("my key file:\n", block, "private_key", "\nwhy does ssh say invalid format?")


def _password_assign(rng: random.Random) -> tuple[str, list]:
    pw = _password(rng)
    forms = (("DB_PASSWORD=", ""), ('"password": "', '"'), ("password = '", "'"),
             ("spring.datasource.password=", ""), ("Server=db1;User Id=sa;Password=", ";"),
             ("my password is ", " and it fails"), ("PGPASSWORD=", " psql -U app"))  # fmt: skip
    pre, suf = rng.choice(forms)
    if pre == "my password is " and not any(c.isdigit() for c in pw):
        pw += "7"
    return _value(pre, pw, "password", suf)


def _url_password(rng: random.Random) -> tuple[str, list]:
    pw = _password(rng).replace("@", "%40").replace("#", "%23")
    user = rng.choice(("admin", "deploy", "jo"))
    if rng.random() < 0.5:
        scheme = rng.choice(
            ("postgresql", "mysql", "mongodb+srv", "redis", "postgresql+psycopg2", "amqp")
        )
        url = f"{scheme}://{user}:{pw}@db-{rng.randint(1, 9)}.internal.acme.io:5432/orders"
        return _value(
            rng.choice(("DATABASE_URL=", "engine = create_engine('")), url, "connection_string"
        )
    return _value(f"git remote add origin https://{user}:", pw, "password", "@git.acme.io/r.git")


def _other(rng: random.Random) -> tuple[str, list]:
    """Forms the rules were not written for first: more providers, CLI flags, bare YAML."""
    r = rng.random()
    if r < 0.2:
        return _value("HF_TOKEN=", "hf_" + _rand(rng, string.ascii_letters, 34), "token")
    if r < 0.35:
        return _value("//registry.npmjs.org/:_authToken=", "npm_" + _rand(rng, ALNUM, 36), "token")
    if r < 0.5:
        key = f"SG.{_rand(rng, URLSAFE, 22)}.{_rand(rng, URLSAFE, 43)}"
        return _value("sg = SendGridAPIClient('", key, "api_key", "')")
    if r < 0.65:
        return _value("mysql -u root --password ", _password(rng), "password", " -h db")
    if r < 0.8:
        word = rng.choice(("tigerlily", "bluebird", "opensesame"))
        return _value("database:\n  user: app\n  password: ", word, "password")
    creds = base64.b64encode(f"jo:{_password(rng)}".encode()).decode()
    return _value("Authorization: Basic ", creds, "password")


SECRETS: dict[str, Maker] = {
    "aws": _aws, "github": _github, "gitlab_slack": _gitlab_slack, "bearer": _bearer,
    "api_key": _api_key, "jwt": _jwt, "private_key": _private_key,
    "password": _password_assign, "url_password": _url_password, "other": _other,
}  # fmt: skip


# ---- look-alikes that must stay: each returns a line ----------------------------------
def _lookalikes(rng: random.Random) -> dict[str, str]:
    hexd = string.hexdigits.lower()[:16]
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + rng.randbytes(120)).decode()
    pub = _pem_body(rng, 5)
    return {
        "git_sha": f"fixed in commit {_rand(rng, hexd, 40)} (see {_rand(rng, hexd, 7)})",
        "sha256": f"sha256sum: {_rand(rng, hexd, 64)}  release.tar.gz",
        "md5": f"md5 checksum {_rand(rng, hexd, 32)}",
        "uuid": f"request id {uuid.UUID(int=rng.getrandbits(128), version=4)}",
        "base64_image": f'<img src="data:image/png;base64,{png}">',
        "npm_integrity": f'"integrity": "sha512-{base64.b64encode(rng.randbytes(64)).decode()}"',
        "docker_digest": f"image: nginx@sha256:{_rand(rng, hexd, 64)}",
        "url_id": f"https://drive.google.com/file/d/1{_rand(rng, URLSAFE, 32)}/view?usp=sharing",
        "youtube": f"https://www.youtube.com/watch?v={_rand(rng, URLSAFE, 11)}&t=42s",
        "s3_url": f"https://bucket.s3.amazonaws.com/uploads/{_rand(rng, hexd, 32)}/photo.jpg",
        "sk_ellipsis": "set OPENAI_API_KEY=sk-... in your shell",
        "sk_x": "OPENAI_API_KEY=sk-" + "x" * rng.choice((20, 32, 48)),
        "your_api_key": rng.choice(
            (
                'api_key = "YOUR_API_KEY"',
                "Authorization: Bearer YOUR_TOKEN_HERE",
                "API_KEY=<your-api-key>",
                'token: "${GITHUB_TOKEN}"',
            )
        ),
        "aws_example": rng.choice(
            (
                "AKIAIOSFODNN7EXAMPLE",
                "AKIAXXXXXXXXXXXXXXXX",
                "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            )
        ),
        "db_placeholder": rng.choice(
            (
                "postgresql://user:password@localhost:5432/mydb",
                "mongodb://<username>:<password>@host:27017",
                "mysql://USER:PASSWORD@HOST/DB",
            )
        ),
        "code_reads_secret": rng.choice(
            (
                'password = os.environ["DB_PASSWORD"]',
                'api_key = os.getenv("OPENAI_API_KEY")',
                "password = getpass.getpass()",
                "password: str",
                "token = tokenizer.encode(text)",
                "secret_key = settings.SECRET_KEY",
            )
        ),
        "masked": rng.choice(("password: ********", 'PASSWORD="***"', "api_key: [REDACTED]")),
        "prose": rng.choice(
            (
                "the password is required and must be strong",
                "Your password is too short.",
                "max_tokens = 1024",
                "A token is a unit of text; secret sauce is the key.",
            )
        ),
        "public_key": rng.choice(
            (
                f"-----BEGIN PUBLIC KEY-----\n{pub}\n-----END PUBLIC KEY-----",
                f"-----BEGIN CERTIFICATE-----\n{pub}\n-----END CERTIFICATE-----",
                f"ssh-rsa AAAAB3NzaC1yc2E{_rand(rng, B64, 180)} jo@laptop",
            )
        ),
        "stripe_publishable": "pk_live_" + _rand(rng, ALNUM, 24),
        "hf_model": rng.choice(("sentence-transformers/all-MiniLM-L6-v2", "bert-base-uncased")),
    }


def examples(seed: int = 0, per_kind: int = 40) -> list[dict]:
    """`per_kind` examples of every secret maker and of every look-alike, in a context; a
    quarter of the secret examples also carry a look-alike."""
    rng = random.Random(seed)
    out: list[dict] = []
    for kind, make in SECRETS.items():
        for _ in range(per_kind):
            line, spans = make(rng)
            if rng.random() < 0.25:
                line += "\n" + rng.choice(list(_lookalikes(rng).values()))
            out.append(_embed(rng, kind, line, spans))
    for kind in _lookalikes(rng):
        for _ in range(per_kind):
            out.append(_embed(rng, "lookalike:" + kind, _lookalikes(rng)[kind], []))
    return out


def _embed(rng: random.Random, kind: str, line: str, spans: list) -> dict:
    context = rng.choice(CONTEXTS)
    offset = context.index("{v}")
    text = context.replace("{v}", line)
    return {
        "text": text,
        "spans": [{"start": s + offset, "end": e + offset, "type": t} for s, e, t in spans],
        "kind": kind,
    }
