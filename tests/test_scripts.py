"""Text in any script through the real stages: near-duplicates found by the dedup stage with a
character or two changed, unrelated texts kept apart, and keyword search finding words inside
sentences written without spaces (the index stage with the real encoder, `pipeline search`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config import compose, to_yaml
from pipeline.search.api import open_from_config
from pipeline.stages.dedup import run as run_dedup
from pipeline.stages.index import run as run_index
from pipeline.store.records import show
from pipeline.store.scope import Scope

REPO = Path(__file__).resolve().parent.parent

# Per script: a record, what its near-copy changes (a character or two), an unrelated record
# in the same script, and a keyword query found inside the first record's text.
SCRIPTS = {
    "zh": (
        "我上周在你们的网店买了一台咖啡机，订单号是八八六二。页面显示三天送达，可是现在已经过了"
        "一个星期，快递延误得太厉害了，物流信息也一直没有更新。请问我的包裹到底在哪里？",
        "非常抱歉给您带来不便。我们已经联系了快递公司，他们确认包裹在中转站滞留，预计两天内会"
        "重新派送。如果周五之前仍未收到，请再联系我们，我们会为您全额退款或者免费补发一台。",
        [("咖啡机", "咖啡壶"), ("两天", "三天")],
        "请教一下红烧肉怎么做才能又香又不油腻？我每次做出来颜色都很淡，味道也不够浓。",
        "先把五花肉切块焯水，锅里放少许油，小火把冰糖炒成焦糖色，再放入肉块翻炒上色，加入生抽、"
        "料酒和八角，倒入热水小火慢炖一个小时，最后大火收汁即可。",
        "快递延误",
    ),
    "ja": (
        "先月購入したノートパソコンの電源が入らなくなりました。充電ケーブルを差し込んでもランプ"
        "が点灯せず、ボタンを長押ししても反応がありません。保証期間内なので修理をお願いしたいです。",
        "ご不便をおかけして申し訳ございません。保証期間内の修理は無料で承ります。購入時のレシート"
        "と製造番号をご用意のうえ、サポート窓口までご連絡ください。引き取りの日時を調整いたします。",
        [("先月", "今月"), ("無料", "無償")],
        "京都で桜がきれいに見られる場所を教えてください。人が多すぎないところが好きです。",
        "哲学の道や醍醐寺がおすすめです。早朝に行けば比較的すいていて、ゆっくり散歩しながら花見を"
        "楽しめます。原谷苑も少し遠いですが、静かで見事な枝垂れ桜が見られます。",
        "保証期間",
    ),
    "th": (
        "สวัสดีครับ ผมสั่งซื้อรองเท้าวิ่งจากร้านของคุณเมื่อสัปดาห์ที่แล้ว แต่ได้รับสินค้าผิดขนาด "
        "ผมสั่งไซซ์สี่สิบสองแต่ได้ไซซ์สี่สิบ อยากทราบว่าจะเปลี่ยนสินค้าได้อย่างไรครับ",
        "ขออภัยในความผิดพลาดค่ะ ลูกค้าสามารถส่งสินค้าคืนได้ภายในสิบสี่วันโดยไม่เสียค่าใช้จ่าย "
        "กรุณาแนบใบเสร็จและเขียนหมายเลขคำสั่งซื้อไว้บนกล่อง เมื่อเราได้รับสินค้าแล้วจะจัดส่ง"
        "รองเท้าขนาดที่ถูกต้องให้ทันทีค่ะ",
        [("สี่สิบสอง", "สี่สิบสาม")],
        "ช่วยแนะนำวิธีปลูกกะเพราในกระถางหน่อยค่ะ ใบเหลืองทุกครั้งเลย",
        "กะเพราชอบแดดจัดและดินที่ระบายน้ำได้ดี ควรรดน้ำวันละครั้งในตอนเช้า อย่าให้น้ำขัง "
        "ใส่ปุ๋ยหมักเดือนละครั้ง และเด็ดยอดบ่อย ๆ เพื่อให้แตกกิ่งใหม่",
        "รองเท้าวิ่ง",
    ),
    "ru": (
        "Здравствуйте! Я заказал у вас стиральную машину две недели назад, но доставка так и не "
        "состоялась. Курьер дважды переносил визит, а служба поддержки не отвечает на письма. "
        "Подскажите, пожалуйста, когда привезут заказ и можно ли получить компенсацию?",
        "Приносим извинения за неудобства. Мы проверили ваш заказ: машина находится на складе в "
        "вашем городе, и курьер доставит её завтра с десяти до четырнадцати часов. В качестве "
        "компенсации мы начислили на ваш счёт бонусы на сумму пятьсот рублей, их можно "
        "использовать при следующей покупке.",
        [("две недели", "три недели")],
        "Как быстро выучить неправильные английские глаголы? Таблица в учебнике слишком длинная.",
        "Учите их группами по похожему звучанию, повторяйте вслух каждый день по десять минут и "
        "сразу составляйте с ними короткие предложения.",
        "стиральную машину",
    ),
    "ar": (
        "مرحبا، طلبت هاتفا محمولا من متجركم قبل عشرة أيام ولم يصل حتى الآن. حاولت الاتصال بخدمة "
        "العملاء عدة مرات لكن لم يرد أحد. أرجو إخباري متى سيصل الطلب، وإذا تأخر أكثر فأنا أريد "
        "استرداد المبلغ كاملا.",
        "نعتذر عن هذا التأخير. لقد تحققنا من طلبك ووجدنا أن الشحنة متوقفة في مركز التوزيع بسبب "
        "ضغط الطلبات. سيتم توصيل الهاتف إليك خلال يومين، وسنرسل لك رقم التتبع عبر البريد "
        "الإلكتروني. إذا لم يصل خلال هذه المدة يمكنك طلب استرداد المبلغ وسنعالجه فورا.",
        [("عشرة أيام", "تسعة أيام")],
        "ما هي أفضل طريقة لتعلم البرمجة بلغة بايثون للمبتدئين؟",
        "ابدأ بالأساسيات مثل المتغيرات والحلقات والدوال، ثم طبق ما تعلمته في مشاريع صغيرة كل يوم.",
        "استرداد المبلغ",
    ),
    "en": (
        "I ordered a crème brûlée torch and six ramekins from your café supply shop last week, "
        "but the parcel arrived with the torch's nozzle cracked and two of the ramekins broken. "
        "The box itself looked fine, so I think they were packed without enough padding.",
        "We are sorry about the damage. Please send us a photo of the cracked nozzle and the "
        "broken ramekins together with your order number, and we will ship replacements at no "
        "cost within three working days. There is no need to return the damaged items to us.",
        [("crème", "creme")],
        "Any tips for a résumé when applying as a junior software engineer at a small startup?",
        "Keep it to one page, lead with projects you shipped, and show what you learned from each.",
        "Crème Brûlée",
    ),
}


def _rows() -> list[dict]:
    rows = []
    for script, (prompt, response, changes, other_p, other_r, _) in SCRIPTS.items():
        copy_p, copy_r = prompt, response
        for old, new in changes:
            copy_p, copy_r = copy_p.replace(old, new, 1), copy_r.replace(old, new, 1)
        assert (copy_p, copy_r) != (prompt, response)
        rows += [
            {"id": f"{script}-a", "prompt": prompt, "response": response},
            {"id": f"{script}-copy", "prompt": copy_p, "response": copy_r},
            {"id": f"{script}-other", "prompt": other_p, "response": other_r},
        ]
    return rows


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("scripts")
    raw = root / "raw" / "chats.jsonl"
    raw.parent.mkdir()
    raw.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in _rows()) + "\n", "utf-8")
    cfg = compose([f"tracking.uri=sqlite:///{root / 'mlflow.db'}"])
    cfg.data.path = str(raw.parent)
    (root / "params.yaml").write_text(to_yaml(cfg), encoding="utf-8")
    return root, run_dedup(cfg, root)


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_a_copy_with_a_character_or_two_changed_is_a_near_duplicate(
    project: tuple[Path, dict], script: str
) -> None:
    root, _ = project
    store = root / "data" / "dedup" / "store.duckdb"
    copy = show(store, f"{script}-copy")
    assert copy["status"] == "duplicate"
    assert copy["record"]["method"] == "near" and copy["record"]["duplicate_of"] == f"{script}-a"
    assert copy["record"]["similarity"] >= 0.8
    # The unrelated text in the same script is not merged with anything.
    assert show(store, f"{script}-other")["status"] == "kept"
    assert show(store, f"{script}-a")["status"] == "kept"


@pytest.mark.slow
def test_only_the_copies_are_removed(project: tuple[Path, dict]) -> None:
    _, report = project
    assert report["near_duplicates"] == len(SCRIPTS) and report["exact_duplicates"] == 0
    assert report["kept"] == 2 * len(SCRIPTS)


@pytest.fixture(scope="module")
def indexed(project: tuple[Path, dict]) -> Path:
    root, _ = project
    run_index(compose([f"tracking.uri=sqlite:///{root / 'mlflow.db'}"]), root)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_keyword_search_finds_a_word_inside_the_sentence(indexed: Path, script: str) -> None:
    searcher = open_from_config(indexed)
    try:
        hits = searcher.search(SCRIPTS[script][-1], k=3, mode="keyword", scope=Scope.all())
    finally:
        searcher.close()
    assert hits and hits[0].id == f"{script}-a"
    # Bigrams of a run may also occur elsewhere (Thai letters recur), but score far less.
    assert all(h.scores["keyword"] < hits[0].scores["keyword"] / 2 for h in hits[1:])


@pytest.mark.slow
def test_pipeline_search_keyword_finds_the_chinese_word(indexed: Path) -> None:
    """The issue's case: 快递延误 appears verbatim in a record; the CLI's keyword mode finds it."""
    argv = ["search", "快递延误", "--mode", "keyword", "-k", "3", "--json", "--root", str(indexed)]
    out = subprocess.run(
        [sys.executable, "-m", "pipeline", *argv],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    hits = json.loads(out.stdout)["results"]
    assert [h["id"] for h in hits] == ["zh-a"]


def test_an_index_built_with_the_old_terms_is_refused_for_keywords_only(tmp_path: Path) -> None:
    """An index from before the term rule (no keyword/tokenizer.txt) would miss every Chinese
    query silently: keyword search refuses it with how to rebuild, verify reports it, and
    vector search and erasure still work on it."""
    import numpy as np
    from helpers.search import build_project

    from pipeline.errors import PipelineError
    from pipeline.index import erase_rids
    from pipeline.index.keyword import TOKENIZER, load_terms
    from pipeline.index.verify import verify_index
    from pipeline.search.api import Searcher, SearchSettings

    prompts = ["我的快递延误了三天", "红烧肉怎么做", "reset my password", "bake bread"]
    table, vectors = build_project(tmp_path, n=len(prompts), dim=8, prompts=prompts)
    index, store = tmp_path / "index", tmp_path / "store.duckdb"
    assert load_terms(index / "keyword").tokenizer == TOKENIZER
    assert json.loads((index / "manifest.json").read_text())["keyword"]["tokenizer"] == TOKENIZER
    hits = Searcher(index, store, SearchSettings(), None).search(
        "快递延误", k=2, mode="keyword", scope=Scope.all()
    )
    assert [h.prompt for h in hits] == [prompts[0]]

    (index / "keyword" / "tokenizer.txt").unlink()  # as every index written before it
    old = Searcher(index, store, SearchSettings(), None)
    with pytest.raises(PipelineError, match=r"term rule 'w-runs-v1'.*pipeline index build"):
        old.search("快递延误", k=2, mode="keyword", scope=Scope.all())
    assert old.search_vector(vectors[2], k=1, scope=Scope.all())[0].prompt == prompts[2]
    report = verify_index(index, store)
    assert not report["ok"] and any("rebuild" in p for p in report["problems"])

    erase_rids(index, {int(table.column("rid")[3].as_py())})
    terms = load_terms(index / "keyword")
    assert terms.tokenizer == "w-runs-v1" and terms.n_docs == 3  # erased, still marked old
    assert np.load(index / "rids.npy").size == 3
