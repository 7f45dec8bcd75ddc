"""Export shapes through the real dedup stage (DuckDB store, MLflow sqlite) and the CLI:
every shape in one mixed file, hostile conversations, a newcomer's chat export with `cp`,
and `pipeline records show` with a turn's neighbours."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from pipeline.cli import main as cli_main
from pipeline.config import compose, to_yaml
from pipeline.stages.dedup import run
from pipeline.store.records import show

U, A, S = "user", "assistant", "system"


def msg(role: str, content: object, **extra: object) -> dict:
    return {"role": role, "content": content, **extra}


MIXED = [
    {"id": "c1", "user": "alice", "created_at": "2024-05-01T10:00:00Z", "tags": ["web"],
     "metadata": {"app": "shop"}, "messages": [
        msg(S, "You are the parcel desk of Acme."),
        msg(U, "Where is my parcel 4411? It was due on Monday."),
        msg(A, "Parcel 4411 left the depot this morning."),
        msg(U, [{"type": "text", "text": "It arrived damaged, see the photo."},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]),
        msg(A, None, tool_calls=[{"id": "t1", "type": "function",
                                  "function": {"name": "refund", "arguments": "{}"}}]),
        msg("tool", "refund 77 created", tool_call_id="t1"),
        msg(A, "I have refunded the damaged parcel in full."),
    ]},
    {"id": "s1", "conversations": [{"from": "system", "value": "Answer like a botanist."},
                                   {"from": "human", "value": "Why do leaves turn red?"},
                                   {"from": "gpt", "value": "Anthocyanins form in autumn."}]},
    {"instruction": "Translate to French", "input": "the cat", "output": "le chat"},
    {"prompt": "Complete: the capital of Peru is", "completion": " Lima."},
    {"id": "p1", "prompt": "Which knot holds a boat?", "chosen": "A cleat hitch.",
     "rejected": "A granny knot."},
    {"chosen": [msg(U, "Name a prime above 90."), msg(A, "97 is prime.")],
     "rejected": [msg(U, "Name a prime above 90."), msg(A, "91 is prime.")]},
    {"id": "f1", "prompt": "How many legs has a spider?", "response": "Eight."},
    {"chosen": "\n\nHuman: Is tea a drink?\n\nAssistant: Yes, a hot one.",
     "rejected": "\n\nHuman: Is tea a drink?\n\nAssistant: No."},
    {"text": "a log line of no known shape", "level": "info"},
]  # fmt: skip

HOSTILE = [
    {"id": "empty", "messages": []},
    {"id": "sys", "messages": [msg(S, "Only a system prompt here.")]},
    {"id": "greet", "messages": [msg(A, "Hi, how can I help?"), msg(U, "Reset my router."),
                                 msg(A, "Hold the button for ten seconds.")]},
    {"id": "uu", "messages": [msg(U, "First part of my question,"), msg(U, "and its end."),
                              msg(A, "Both parts answered.")]},
    {"id": "case", "messages": [msg("User", "Upper case roles work?"),
                                msg("ASSISTANT", "They do, case is ignored.")]},
    {"id": "odd", "messages": [msg(U, "Tell me a story about owls."),
                               msg("narrator", "(the room goes quiet)"),
                               msg(A, "Once upon a time an owl kept a lighthouse.")]},
    {"id": "bad", "messages": [msg(U, "Good first question about glaciers?"),
                               msg(A, "Glaciers move slowly."), msg(U, 12345),
                               msg(A, "A reply to a broken message."),
                               msg(U, "Good third question about volcanoes?"),
                               msg(A, "Volcanoes vent magma.")]},
    {"id": "notlist", "messages": "hello"},
    {"id": "norole", "messages": [{"content": "who am I?"}]},
    {"id": "onlyreply", "messages": [msg(A, "An answer to nothing.")]},
]  # fmt: skip


def stage(root: Path, raw: Path, mlflow_uri: str, *overrides: str) -> dict:
    cfg = compose([f"tracking.uri={mlflow_uri}", "dedup.near.enabled=false",
                   "dedup.semantic.enabled=false", *overrides])  # fmt: skip
    cfg.data.path = str(raw)
    (root / "params.yaml").write_text(to_yaml(cfg), encoding="utf-8")
    report = run(cfg, root)
    assert report["accounting"]["holds"], report["accounting"]
    return report


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory, mlflow_uri: str) -> tuple[Path, dict]:
    """One stage run over a mixed-shape file and a file of hostile conversations."""
    root = tmp_path_factory.mktemp("shapes")
    write_jsonl(root / "raw" / "a_mixed.jsonl", MIXED)
    write_jsonl(root / "raw" / "b_hostile.jsonl", HOSTILE)
    return root, stage(root, root / "raw", mlflow_uri)


@pytest.fixture(scope="module")
def long(tmp_path_factory: pytest.TempPathFactory, mlflow_uri: str) -> Path:
    """One stage run over a 10,000-turn chat."""
    root = tmp_path_factory.mktemp("long")
    turns = [m for i in range(10_000) for m in (msg(U, f"q{i}"), msg(A, f"a{i}"))]
    write_jsonl(root / "raw" / "long.jsonl", [{"id": "long", "messages": turns}])
    report = stage(root, root / "raw", mlflow_uri)
    assert report["shapes"] == {"chat": {"rows": 1, "records": 10_000}}
    return root


def store(root: Path) -> Path:
    return root / "data" / "dedup" / "store.duckdb"


def record(root: Path, record_id: str) -> dict:
    found = show(store(root), record_id)
    assert found["status"] in ("kept", "duplicate"), found
    return found["record"]


def rejected(root: Path) -> dict[str, tuple[str, str]]:
    with duckdb.connect(str(store(root)), read_only=True) as con:
        rows = con.execute("SELECT record_id, reason, detail FROM rejected").fetchall()
    return {rid: (reason, detail) for rid, reason, detail in rows}


def test_every_shape_in_one_file(mixed: tuple[Path, dict]) -> None:
    root, report = mixed
    shapes = report["shapes"]
    for shape in ("chat", "sharegpt", "alpaca", "prompt_completion", "flat", "hh_rlhf"):
        assert shapes[shape]["rows"] >= 1, shape
    assert shapes["preference"] == {"rows": 2, "records": 2}
    assert shapes["unknown"] == {"rows": 1, "records": 1}
    assert sum(s["records"] for s in shapes.values()) == report["input_records"]
    c1 = record(root, "c1:1")
    assert (c1["user_id"], c1["session_id"], c1["tags"]) == ("alice", "c1", ["web"])
    assert c1["metadata"]["system"] == "You are the parcel desk of Acme."
    assert c1["metadata"]["app"] == "shop"
    c2 = record(root, "c1:2")
    assert (c2["parent_id"], c2["turn"]) == ("c1:1", 2)
    assert c2["prompt"] == "It arrived damaged, see the photo."  # the image is not text
    assert c2["response"] == "I have refunded the damaged parcel in full."  # not the tool call
    meta = c2["metadata"]
    assert meta["parts"] == [{"at": "messages[3].content[1]", "type": "image_url"}]
    assert meta["tool_calls"][0]["calls"][0]["function"]["name"] == "refund"
    assert meta["tool_results"] == [{"at": "messages[5]", "content": "refund 77 created",
                                     "tool_call_id": "t1"}]  # fmt: skip
    assert record(root, "s1:1")["metadata"]["system"] == "Answer like a botanist."
    assert record(root, "a_mixed.jsonl:3")["prompt"] == "Translate to French\n\nthe cat"
    assert record(root, "a_mixed.jsonl:4")["response"] == " Lima."
    assert show(store(root), "p1")["preferences"][0]["rejected"] == "A granny knot."
    assert record(root, "f1")["response"] == "Eight."
    assert record(root, "a_mixed.jsonl:8:1")["response"] == "Yes, a hot one."  # hh-rlhf
    reason, detail = rejected(root)["a_mixed.jsonl:9"]
    assert reason == "unknown_shape" and "'text', 'level'" in detail


def test_hostile_conversations_are_kept_or_rejected_with_a_reason(
    mixed: tuple[Path, dict],
) -> None:
    root, report = mixed
    bad = rejected(root)
    assert bad["b_hostile.jsonl:1"][0] == "empty_conversation"
    assert bad["b_hostile.jsonl:2"] == ("no_user_turn", "b_hostile.jsonl:2: the conversation "
                                        "has only system messages")  # fmt: skip
    assert record(root, "greet:1")["metadata"]["opening"] == "Hi, how can I help?"
    uu = record(root, "uu:1")
    assert uu["prompt"] == "First part of my question,\n\nand its end."
    assert uu["metadata"]["non_alternating"] is True
    assert record(root, "case:1")["response"] == "They do, case is ignored."
    odd = record(root, "odd:1")
    assert odd["metadata"]["unknown_roles"][0]["role"] == "narrator"
    assert odd["response"] == "Once upon a time an owl kept a lighthouse."
    # The malformed message costs its own turn; the turns around it are kept and linked.
    assert bad["bad:2"][0] == "invalid_message" and "messages[2]" in bad["bad:2"][1]
    assert record(root, "bad:1")["prompt"].startswith("Good first")
    assert record(root, "bad:3")["parent_id"] == "bad:2"
    assert bad["b_hostile.jsonl:8"][0] == "invalid_conversation"
    assert bad["b_hostile.jsonl:9"][0] == "invalid_message"
    assert "'role' must be a string" in bad["b_hostile.jsonl:9"][1]
    assert bad["b_hostile.jsonl:10"][0] == "no_user_turn"
    # Nothing silently dropped: each row, or each turn, is counted somewhere.
    assert report["shapes"]["chat"]["rows"] == 1 + len(HOSTILE)


@pytest.mark.slow
def test_ten_thousand_turns(long: Path) -> None:
    root = long
    last = show(store(root), "long:10000")
    assert last["record"]["parent_id"] == "long:9999" and len(last["session"]) == 10_000
    near = last["neighbours"]
    assert [t["id"] for t in near["previous"]] == ["long:9998", "long:9999"]
    assert near["next"] == [] and near["earlier"] == 9_997


@pytest.mark.slow
def test_records_show_prints_a_turn_between_its_neighbours(
    long: Path, capsys: pytest.CaptureFixture
) -> None:
    root = long
    args = ["records", "show", "long:5000", "--store", str(store(root))]
    assert cli_main(args) == 0
    out = capsys.readouterr().out
    assert "session long: 10000 turns" in out and "4997 earlier turns" in out
    assert "> turn 5000: long:5000" in out and "turn 5002: long:5002" in out
    assert "turn 5003:" not in out and "4998 later turns" in out
    assert cli_main([*args, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [t["turn"] for t in data["neighbours"]["next"]] == [5001, 5002]
    assert data["neighbours"]["previous"][-1]["prompt"] == "q4998"


OPENAI = [
    {"messages": [msg(S, "You are a helpful assistant."), msg(U, f"Question {i}: how do I "
                  f"{task}?"), msg(A, f"To {task}, open the settings page.")]}
    for i, task in enumerate(["reset a password", "change my email", "close my account",
                              "export my data", "enable two-factor login"])
]  # fmt: skip


@pytest.mark.slow  # a fresh process: its imports alone take seconds
def test_a_newcomers_chat_export_with_cp_and_the_stage(tmp_path: Path, mlflow_uri: str) -> None:
    """The issue's opening case: 5 OpenAI chat conversations, copied in, all kept."""
    export = tmp_path / "exports" / "chat.jsonl"
    write_jsonl(export, OPENAI)
    (tmp_path / "data" / "raw").mkdir(parents=True)
    shutil.copy(export, tmp_path / "data" / "raw")
    cfg = compose([f"tracking.uri={mlflow_uri}"])
    cfg.data.path = "data/raw"
    (tmp_path / "params.yaml").write_text(to_yaml(cfg), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "dedup", "--root", str(tmp_path), "--json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["kept"] == 5 and report["rejected"]["total"] == 0
    assert report["shapes"] == {"chat": {"rows": 5, "records": 5}}


def test_transform_is_an_alias_of_format(tmp_path: Path, mlflow_uri: str) -> None:
    write_jsonl(tmp_path / "raw" / "x.jsonl", [{"prompt": "p", "completion": "c"}])
    cfg = compose([f"tracking.uri={mlflow_uri}", "+data.transform=flat"])
    cfg.data.path = str(tmp_path / "raw")
    report = run(cfg, tmp_path)
    assert report["shapes"] == {"flat": {"rows": 1, "records": 1}}


def _hh_lines(path: Path, n: int) -> list[dict]:
    import gzip

    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(next(fh)) for _ in range(n)]


def _messages(transcript: str, user: str = U, assistant: str = A) -> list[dict]:
    from pipeline.dedup.shapes.hh_rlhf import split_turns

    return [{"role": user if role == "Human" else assistant, "content": text}
            for role, text in split_turns(transcript)]  # fmt: skip


def _converted(lines: list[dict]) -> dict[str, list[dict]]:
    """The hh-rlhf pairs as chat messages, ShareGPT and (TRL implicit-prompt) preference pairs."""
    sharegpt = [
        {"conversations": [{"from": "human" if m["role"] == U else "gpt", "value": m["content"]}
                           for m in _messages(line["chosen"])]}
        for line in lines
    ]  # fmt: skip
    return {
        "chat": [{"messages": _messages(line["chosen"])} for line in lines],
        "sharegpt": sharegpt,
        "preference": [
            {"chosen": _messages(line["chosen"]), "rejected": _messages(line["rejected"])}
            for line in lines
        ],
    }


def _dialogues(root: Path) -> tuple[dict[int, list[tuple]], dict[int, tuple], dict[str, int]]:
    """By input line: its turns (turn, prompt, response, parent is the previous turn, session
    shared), its preference, and rejections by reason; ids are the shape's own."""
    with duckdb.connect(str(store(root)), read_only=True) as con:
        rows = con.execute(
            "SELECT line, turn, prompt, response, id, parent_id, session_id FROM records UNION ALL "
            "SELECT line, turn, prompt, response, id, parent_id, session_id FROM duplicates "
            "ORDER BY line, turn"
        ).fetchall()
        prefs = con.execute(
            "SELECT r.line, p.chosen, p.rejected FROM preferences p JOIN (SELECT id, line FROM "
            "records UNION ALL SELECT id, line FROM duplicates) r ON r.id = p.record_id"
        ).fetchall()
        reasons = dict(con.execute("SELECT reason, count(*) FROM rejected GROUP BY 1").fetchall())
    by_line: dict[int, list[tuple]] = {}
    for line, turn, prompt, response, rid, parent, session in rows:
        turns = by_line.setdefault(line, [])
        previous = turns[-1] if turns else None
        linked = parent is None if previous is None else parent == previous[-1]
        same = previous is None or previous[-2] == session
        turns.append((turn, prompt, response, linked and same, session, rid))
    dialogues = {k: [t[:4] for t in v] for k, v in by_line.items()}
    sessions = {v[0][4] for v in by_line.values()}
    assert len(sessions) == len(by_line)  # one session per conversation
    return dialogues, {line: (c, r) for line, c, r in prefs}, reasons


@pytest.mark.slow
@pytest.mark.shared_data
def test_hh_rlhf_dialogues_read_alike_in_every_shape(
    tmp_path: Path, mlflow_uri: str, hh_rlhf_path: Path
) -> None:
    """The first 200 hh-rlhf transcripts, converted here into chat messages, ShareGPT and
    preference pairs, give the records, sessions, links and preferences of the hh_rlhf shape."""
    lines = _hh_lines(hh_rlhf_path, 200)
    results = {}
    for shape, rows in {"hh_rlhf": lines, **_converted(lines)}.items():
        root = tmp_path / shape
        write_jsonl(root / "raw" / "hh.jsonl", rows)
        report = stage(root, root / "raw", mlflow_uri)
        assert report["shapes"][shape]["rows"] == 200, report["shapes"]
        results[shape] = (report["input_records"], *_dialogues(root))
    expected = results.pop("hh_rlhf")
    assert expected[0] > 400  # multi-turn dialogues: more records than lines
    assert len(expected[2]) > 190 and all(t[3] for d in expected[1].values() for t in d)
    for shape, got in results.items():
        assert got[0] == expected[0], shape
        assert got[1] == expected[1], shape
        assert got[3] == expected[3], shape
        if shape == "preference":
            assert got[2] == expected[2]


def test_an_erased_users_conversation_is_never_stored(tmp_path: Path, mlflow_uri: str) -> None:
    """The conversation's own `user` column names its user before it is read, so even its
    malformed turn is not stored for an erased user."""
    from pipeline.io.files import user_hash

    gone = {"user": "gone", "messages": [msg(U, "Keep my secret, please."), msg(A, "Kept."),
                                         msg(U, None, extra=1), "not a message"]}  # fmt: skip
    stays = {"user": "stays", "messages": [msg(U, "A question to keep."), msg(A, "Kept too.")]}
    write_jsonl(tmp_path / "raw" / "x.jsonl", [gone, stays])
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "erasures.txt").write_text(user_hash("gone") + "\n")
    report = stage(tmp_path, tmp_path / "raw", mlflow_uri)
    assert report["erased"] == 1 and report["kept"] == 1 and report["rejected"]["total"] == 0
    with duckdb.connect(str(store(tmp_path)), read_only=True) as con:
        assert con.execute("SELECT user_id FROM records").fetchall() == [("stays",)]
