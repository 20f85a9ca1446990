"""What a token is, shown by minit5's own tokenizers: SentencePiece pieces next to byte tokens.

    python docs/scripts/tokens_table.py          prints the markdown block used in docs/tokens.md
    python docs/scripts/tokens_table.py --zh     the same in Chinese, for docs/zh/tokens.md

No real T5 vocabulary can be downloaded here, so the SentencePiece side uses a SMALL vocabulary that this script
trains (tests/tokenizer_vocab.py `train_spiece`: the `sentencepiece` trainer on a ~20-line corpus, with T5's
layout <pad>=0, </s>=1, <unk>=2, pieces from 3, 100 sentinels on top). Its pieces and ids are NOT those of
t5-small or flan-T5 (32,000 pieces): only the mechanism is the same. The byte side is the real thing: the demo's
and byT5's tokenizer (minit5/tokenizer.py Tokenizer.byte_level) gives the ids byT5 gives. Needs sentencepiece
(pip install -e ".[test]").
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from minit5 import Tokenizer  # noqa: E402

SENTENCES = ["Where is Ganymede?", "Ganymede is a moon of Jupiter.",
             "translate English to German: How old are you?", "伽尼米德在哪里？"]
GANYMEDE_ZH = SENTENCES[-1]


def small_sentencepiece() -> Tokenizer:
    """minit5's tokenizer on a freshly trained small SentencePiece vocabulary (deterministic: one thread)."""
    try:
        from tokenizer_vocab import train_spiece
    except ImportError:
        sys.exit('this script trains a small SentencePiece vocabulary: pip install sentencepiece  (or -e ".[test]")')
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "spiece.model").write_bytes(train_spiece())
        return Tokenizer.from_pretrained(folder)


def pieces(tok: Tokenizer, text: str) -> tuple[list[str], list[int]]:
    """(piece strings, ids) of text; ▁ in a piece marks "a space before"."""
    ids = tok.encode(text)
    return [tok._backend.id_to_token(i) for i in ids], ids  # the raw pieces: decode() would drop the ▁


def byte_names(tok: Tokenizer, ids: list[int]) -> list[str]:
    """A byte token as its character (ASCII) or its hex value (one byte of a multi-byte UTF-8 character)."""
    out = []
    for i in ids:
        if i < 3:
            out.append(("<pad>", "</s>", "<unk>")[i])
        else:
            b = i - 3
            out.append(chr(b) if 32 < b < 127 else ("␣" if b == 32 else f"0x{b:02X}"))
    return out


def _code(items) -> str:
    return " ".join(f"`{s}`" for s in items)


def markdown_block(zh: bool = False) -> str:
    sp, by = small_sentencepiece(), Tokenizer.byte_level()
    n_pieces = sp.vocab_size - sp.num_sentinels
    if zh:
        lines = ["| 句子 | SentencePiece 片段（本脚本训练的小词表） | 个数 | 字节词元（演示模型、byT5） | 个数 |",
                 "|---|---|---|---|---|"]
    else:
        lines = ["| sentence | SentencePiece pieces (the small vocabulary trained by this script) | count "
                 "| byte tokens (the demo, byT5) | count |", "|---|---|---|---|---|"]
    for text in SENTENCES:
        sp_pieces, sp_ids = pieces(sp, text)
        by_ids = by.encode(text)
        lines.append(f"| {text} | {_code(sp_pieces)} | {len(sp_ids)} | {_code(byte_names(by, by_ids))} | {len(by_ids)} |")
    sp_ids = sp.encode(GANYMEDE_ZH)
    by_ids = by.encode(GANYMEDE_ZH)
    sentinels_sp = f"`<extra_id_99>`={sp.sentinel_id(99)} … `<extra_id_0>`={sp.sentinel_id(0)}"
    last = by.num_sentinels - 1
    sentinels_by = f"`<extra_id_0>`={by.sentinel_id(0)} … `<extra_id_{last}>`={by.sentinel_id(last)}"
    n_bytes = len(GANYMEDE_ZH.encode("utf-8"))
    facts = [  # (what, 项目, value, 值)
        ("small SentencePiece vocabulary", "小 SentencePiece 词表",
         f"{sp.vocab_size} ids: `<pad>`=0, `</s>`=1, `<unk>`=2, pieces 3–{n_pieces - 1}, {sentinels_sp}",
         f"共 {sp.vocab_size} 个 id：`<pad>`=0，`</s>`=1，`<unk>`=2，片段 3–{n_pieces - 1}，{sentinels_sp}"),
        ("byte-level (demo, byT5)", "字节级（演示模型、byT5）",
         f"{by.vocab_size} ids: `<pad>`=0, `</s>`=1, `<unk>`=2, byte b → id b + 3 (3–258), {sentinels_by}",
         f"共 {by.vocab_size} 个 id：`<pad>`=0，`</s>`=1，`<unk>`=2，字节 b → id b + 3（3–258），{sentinels_by}"),
        (f"{GANYMEDE_ZH} in the small vocabulary", f"“{GANYMEDE_ZH}”在小词表中",
         f"ids {sp_ids}: {_code(pieces(sp, GANYMEDE_ZH)[0])}",
         f"id {sp_ids}：{_code(pieces(sp, GANYMEDE_ZH)[0])}"),
        (f"{GANYMEDE_ZH} in bytes", f"“{GANYMEDE_ZH}”的字节",
         f"{len(GANYMEDE_ZH)} characters, {n_bytes} UTF-8 bytes, ids {by_ids}",
         f"{len(GANYMEDE_ZH)} 个汉字和标点，{n_bytes} 个 UTF-8 字节，id {by_ids}"),
    ]
    lines += ["", "| 项目 | 值 |" if zh else "| what | value |", "|---|---|"]
    lines += [f"| {name_zh if zh else name} | {value_zh if zh else value} |" for name, name_zh, value, value_zh in facts]
    return "\n".join(lines)


def markdown_block_zh() -> str:
    return markdown_block(zh=True)


if __name__ == "__main__":
    print(markdown_block(zh="--zh" in sys.argv[1:]))
