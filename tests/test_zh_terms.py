"""One term per concept in the Chinese pages: the course's own words (提示, 补全, 推理, 上下文窗口, 词元), the
glossary's (docs/zh/glossary.md) for the rest.

TERMS lists, for each concept that has drifted between several Chinese words, the chosen term and the variants
that must not appear in docs/zh/*.md or README.zh-CN.md (as regular expressions: a variant may be allowed in one
context and not in another). Every chosen term is in the glossary, so a reader who looks a word up finds the one
the pages use. Code spans and code blocks are checked too: their comments are read like the prose.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ZH = ROOT / "docs" / "zh"
GLOSSARY = ZH / "glossary.md"
# Pages not yet held to the list, each with the reason. docs/zh/exercises.md belongs to the exercises' own issue,
# whose owner edits it at the same time as this list was made; its terms are fixed there, then it joins the rest.
NOT_YET = {}  # pages left out for a while, with the reason (none now)
PAGES = [page for page in sorted(ZH.glob("*.md")) if page.name not in NOT_YET] + [ROOT / "README.zh-CN.md"]

# (concept, chosen term, [rejected variants as regular expressions])
TERMS = [
    ("prompt: the text given to the model", "提示", [r"提示词(?!元)", r"提示语"]),
    ("completion: the text the model writes after the prompt", "补全", [r"(?<!继)续写", r"提示\s*→\s*回答", r"从提示到回答"]),
    ("inference: running a trained model (推理 never means reasoning here)", "推理",
     [r"逐步推理", r"推理能力", r"推理步骤", r"推断"]),
    ("token", "词元", [r"令牌", r"(?<![掩])标记(?![号])"]),
    ("vocabulary", "词表", [r"词汇表"]),
    ("tokenizer", "分词器", [r"标记器", r"切词器"]),
    ("stack: the encoder's or the decoder's blocks", "层堆叠", [r"堆栈", r"(?<!堆)(?<!调用)栈(?!溢出)"]),
    ("exact match", "精确匹配", [r"完全匹配"]),
    ("greedy search", "贪心搜索", [r"贪心解码", r"贪婪"]),
    ("beam search", "束搜索", [r"集束搜索", r"波束搜索"]),
    ("padding", "填充", [r"补齐", r"补零"]),
    ("packing: several short examples in one row", "打包", [r"拼接样本", r"样本拼接", r"序列打包"]),
    ("span corruption: T5's pre-training objective; the English name only beside the Chinese one",
     "片段破坏", [r"(?<!片段破坏（)(?<!片段破坏\*\*（)(?<!片段破坏 \()span corruption"]),
    ("feed-forward network", "前馈网络", [r"前馈层"]),
    ("context window", "上下文窗口", [r"上下文长度", r"语境窗口"]),
    ("fine-tuning", "微调", [r"精调"]),
    ("resume: continue a training run from its checkpoint", "续训", [r"断点续训", r"恢复训练"]),
    ("decoding step", "解码步", [r"解码步骤"]),
    ("mask", "掩码", [r"遮罩", r"蒙版"]),
    ("relative position bias (also called 相对位置编码)", "相对位置偏置", [r"相对位置嵌入"]),
    ("quantization (int8)", "量化", [r"量子化"]),
    ("adapter (LoRA)", "适配器", [r"适配层", r"适配模块"]),
    ("rank (LoRA's r)", "秩", [r"阶数"]),
]


def glossary_terms() -> str:
    """The glossary's 中文 column, where a reader looks a term up."""
    cells = [line.split("|")[2] for line in GLOSSARY.read_text(encoding="utf-8").splitlines()
             if line.startswith("|") and line.count("|") >= 4 and not line.startswith("|---")]
    return "\n".join(cells)


@pytest.mark.parametrize("concept, chosen, rejected", TERMS, ids=[chosen for _, chosen, _ in TERMS])
def test_each_chosen_term_is_in_the_glossary(concept, chosen, rejected):
    assert chosen in glossary_terms(), f"{concept}: add {chosen} to docs/zh/glossary.md"


def problems_in(text: str, where: str) -> list[str]:
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        if where.endswith("glossary.md") and line.startswith("|"):
            line = line.split("|", 2)[-1]  # the glossary's English column names the concept in English
        for concept, chosen, rejected in TERMS:
            for pattern in rejected:
                for m in re.finditer(pattern, line):
                    found.append(f"{where}:{number}: {m.group(0)!r}, write {chosen} ({concept})")
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_the_chinese_pages_use_the_chosen_terms(page):
    problems = problems_in(page.read_text(encoding="utf-8"), page.relative_to(ROOT).as_posix())
    assert not problems, "\n".join(problems)


def test_the_term_check_catches_a_variant():
    text = "模型根据提示词续写。\n贪心解码的结果。\n片段破坏（span corruption）可以；单独的 span corruption 不行。\n编码器的层堆叠"
    assert [p.split(": ", 1)[1].split(",")[0] for p in problems_in(text, "x.md")] == [
        "'提示词'", "'续写'", "'贪心解码'", "'span corruption'"]


def test_not_yet_lists_only_pages_that_exist():
    assert all((ZH / name).exists() for name in NOT_YET)
