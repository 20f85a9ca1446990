"""What a token is, shown by minit5's own tokenizers: flan-T5's real pieces next to the demo's byte tokens.

    python docs/scripts/tokens_table.py          prints the markdown block used in docs/tokens.md
    python docs/scripts/tokens_table.py --zh     the same in Chinese, for docs/zh/tokens.md

The SentencePiece side is T5's real vocabulary, the one flan-T5 uses, shipped in docs/data/flan-t5-tokenizer/
(tokenizer.json, Apache-2.0; its README says where it comes from) and read by minit5/tokenizer.py Tokenizer: the
pieces and ids are flan-T5's. The byte side is the demo's and byT5's tokenizer (Tokenizer.byte_level), which gives
the ids byT5 gives.

The sentences carry no full-width punctuation on purpose: the shipped file has no NFKC normalizer, while Google's
spiece.model turns `？` into `?` first, so a full-width `？` would get another id here than in flan-T5. Chinese
characters and `。` are not changed by NFKC, so their ids are flan-T5's.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from minit5 import Tokenizer  # noqa: E402

VOCABULARY = ROOT / "docs" / "data" / "flan-t5-tokenizer"  # T5's vocabulary, as flan-T5 uses it
QUESTION_EN = "Where is Ganymede in our solar system?"  # the course's question
QUESTION_ZH = "伽尼米德在我们的太阳系中的位置"  # the same question in Chinese
SENTENCES = [QUESTION_EN, "Ganymede is a moon of Jupiter.", "translate English to German: How old are you?",
             QUESTION_ZH, "木卫三是木星的卫星。"]


def flan_t5_tokenizer() -> Tokenizer:
    """minit5's tokenizer on T5's real vocabulary (docs/data/flan-t5-tokenizer/tokenizer.json)."""
    return Tokenizer.from_pretrained(VOCABULARY)


def pieces(tok: Tokenizer, ids: list[int]) -> list[str]:
    """The pieces of ids as the vocabulary names them; ▁ in a piece marks "a space before"."""
    return [tok.piece(i) for i in ids]


def byte_names(ids: list[int]) -> list[str]:
    """A byte token as its character (ASCII), ␣ for a space, or its hex value (one byte of a multi-byte UTF-8
    character)."""
    out = []
    for i in ids:
        if i < 3:
            out.append(("<pad>", "</s>", "<unk>")[i])
        else:
            b = i - 3
            out.append(chr(b) if 32 < b < 127 else ("␣" if b == 32 else f"0x{b:02X}"))
    return out


def chinese_pieces(tok: Tokenizer) -> int:
    """How many of the vocabulary's pieces hold a Chinese (CJK unified) character."""
    return sum(any("\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf" for ch in tok.piece(i))
               for i in range(tok.vocab_size))


def _code(items) -> str:
    return " ".join(f"`{s}`" for s in items)


def markdown_block(zh: bool = False) -> str:
    sp, by = flan_t5_tokenizer(), Tokenizer.byte_level()
    n_pieces = sp.vocab_size - sp.num_sentinels
    if zh:
        lines = ["| 句子 | flan-T5 的片段（T5 真正的词表） | 个数 | 字节词元（演示模型、byT5） | 个数 |",
                 "|---|---|---|---|---|"]
    else:
        lines = ["| sentence | flan-T5's pieces (T5's real vocabulary) | count | byte tokens (the demo, byT5) | count |",
                 "|---|---|---|---|---|"]
    for text in SENTENCES:
        sp_ids, by_ids = sp.encode(text), by.encode(text)
        lines.append(f"| {text} | {_code(pieces(sp, sp_ids))} | {len(sp_ids)} | {_code(byte_names(by_ids))} "
                     f"| {len(by_ids)} |")
    en_ids, zh_ids = sp.encode(QUESTION_EN), sp.encode(QUESTION_ZH)
    first = QUESTION_ZH[0]
    first_ids = by.encode(first, add_eos=False)
    n_chars, n_bytes = len(QUESTION_ZH), len(QUESTION_ZH.encode("utf-8"))
    cjk = chinese_pieces(sp)
    sentinels_sp = f"`<extra_id_99>`={sp.sentinel_id(99):,} … `<extra_id_0>`={sp.sentinel_id(0):,}"
    last = by.num_sentinels - 1
    sentinels_by = f"`<extra_id_0>`={by.sentinel_id(0)} … `<extra_id_{last}>`={by.sentinel_id(last)}"
    facts = [  # (what, 项目, value, 值)
        ("flan-T5's vocabulary", "flan-T5 的词表",
         f"{sp.vocab_size:,} ids: `<pad>`=0, `</s>`=1, `<unk>`=2, pieces 3–{n_pieces - 1:,}, {sentinels_sp}; "
         f"pieces holding a Chinese character: {cjk}",
         f"共 {sp.vocab_size:,} 个 id：`<pad>`=0，`</s>`=1，`<unk>`=2，片段 3–{n_pieces - 1:,}，{sentinels_sp}；"
         f"含汉字的片段：{cjk} 个"),
        ("byte-level (demo, byT5)", "字节级（演示模型、byT5）",
         f"{by.vocab_size} ids: `<pad>`=0, `</s>`=1, `<unk>`=2, byte b → id b + 3 (3–258), {sentinels_by}",
         f"共 {by.vocab_size} 个 id：`<pad>`=0，`</s>`=1，`<unk>`=2，字节 b → id b + 3（3–258），{sentinels_by}"),
        (f"{QUESTION_EN} in flan-T5's vocabulary", f"“{QUESTION_EN}”在 flan-T5 的词表中",
         f"ids {en_ids}", f"id {en_ids}"),
        (f"{QUESTION_ZH} in flan-T5's vocabulary", f"“{QUESTION_ZH}”在 flan-T5 的词表中",
         f"ids {zh_ids}: {_code(pieces(sp, zh_ids))}; all {n_chars} characters became one `<unk>`",
         f"id {zh_ids}：{_code(pieces(sp, zh_ids))}；{n_chars} 个汉字全部变成了一个 `<unk>`"),
        (f"{first} in bytes", f"“{first}”的字节",
         f"{len(first_ids)} UTF-8 bytes {_code(byte_names(first_ids))}, ids {first_ids}",
         f"{len(first_ids)} 个 UTF-8 字节 {_code(byte_names(first_ids))}，id {first_ids}"),
        (f"{QUESTION_ZH} in bytes", f"“{QUESTION_ZH}”的字节",
         f"{n_chars} characters, {n_bytes} UTF-8 bytes, and `</s>`: {n_bytes + 1} ids",
         f"{n_chars} 个汉字，{n_bytes} 个 UTF-8 字节，加上 `</s>` 共 {n_bytes + 1} 个 id"),
    ]
    lines += ["", "| 项目 | 值 |" if zh else "| what | value |", "|---|---|"]
    lines += [f"| {name_zh if zh else name} | {value_zh if zh else value} |" for name, name_zh, value, value_zh in facts]
    return "\n".join(lines)


def markdown_block_zh() -> str:
    return markdown_block(zh=True)


if __name__ == "__main__":
    print(markdown_block(zh="--zh" in sys.argv[1:]))
