"""A Chinese prompt as two models see it: the demo's byte tokens, and flan-T5's SentencePiece vocabulary.

    python docs/scripts/draw_chinese_prompt.py         writes docs/img/chinese_prompt.png (needs matplotlib)
    python docs/scripts/draw_chinese_prompt.py --zh    Chinese labels: docs/img/zh/chinese_prompt.png

Every token in the picture comes from minit5/tokenizer.py: Tokenizer.byte_level (the demo, byT5) and T5's real
vocabulary in docs/data/flan-t5-tokenizer/ (flan-T5), the same as the table of docs/tokens.md
(docs/scripts/tokens_table.py). Both figures draw Chinese characters, so both need a CJK font (Debian:
apt-get install fonts-wqy-microhei or fonts-noto-cjk).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import figure_path, in_language, need_matplotlib, save_figure, use_chinese_font  # noqa: E402
from tokens_table import QUESTION_EN, QUESTION_ZH, byte_names, flan_t5_tokenizer  # noqa: E402

from minit5 import Tokenizer  # noqa: E402  (tokens_table put the repository on sys.path)

COLOURS = {"char": "#ffffff", "byte": "#dbe7fd", "first": "#f5a65b", "piece": "#dcf3e3", "unk": "#f6c7c3",
           "special": "#e6e6e6"}


def tokens():
    """What the picture shows, all computed: (characters, byte ids per character, the byte tokenizer's </s> id,
    flan-T5's ids of the Chinese question, flan-T5's ids of the English question, flan-T5's tokenizer)."""
    by, sp = Tokenizer.byte_level(), flan_t5_tokenizer()
    per_char = [by.encode(ch, add_eos=False) for ch in QUESTION_ZH]
    assert sum(per_char, []) + [by.eos_id] == by.encode(QUESTION_ZH)  # characters' bytes, then </s>
    return list(QUESTION_ZH), per_char, by.eos_id, sp.encode(QUESTION_ZH), sp.encode(QUESTION_EN), sp


def draw(out: Path, zh: bool = False):
    plt = need_matplotlib()
    use_chinese_font(plt)  # the question itself is Chinese, in both figures
    tr = in_language(zh)
    from matplotlib.patches import FancyBboxPatch

    chars, per_char, eos, zh_ids, en_ids, sp = tokens()
    n_bytes = sum(map(len, per_char))
    box, gap, group_gap = 0.255, 0.02, 0.09  # a byte box's width, between boxes, between characters
    group = 3 * box + 2 * gap  # one character's three bytes
    fig, ax = plt.subplots(figsize=(12, 5.2))
    ax.axis("off")

    def rect(x, y, w, h, colour, text="", sub="", size=8, weight="normal"):
        ax.add_patch(FancyBboxPatch((x, y - h / 2), w, h, boxstyle="round,pad=0,rounding_size=0.03",
                                    facecolor=colour, edgecolor="0.45", linewidth=0.6))
        ax.text(x + w / 2, y + (0.06 if sub else 0), text, ha="center", va="center", fontsize=size, fontweight=weight)
        if sub:
            ax.text(x + w / 2, y - 0.13, sub, ha="center", va="center", fontsize=6, color="0.35")

    def heading(y, text):
        ax.text(0, y + 0.3, text, fontsize=10, va="bottom")

    # 1. the characters, each right above its three bytes
    starts = [k * (group + group_gap) for k in range(len(chars))]
    end = starts[-1] + group
    y_chars, y_bytes, y_flan, y_en = 4.0, 3.0, 1.7, 0.6
    heading(y_chars, tr(f"the prompt: {len(chars)} Chinese characters", f"提示：{len(chars)} 个汉字"))
    for k, (x, ch) in enumerate(zip(starts, chars)):
        rect(x, y_chars, group, 0.42, COLOURS["first"] if k == 0 else COLOURS["char"], ch, size=13)
    # 2. the demo's byte tokens
    heading(y_bytes, tr(f"the demo and byT5 read UTF-8 bytes: 3 tokens per character, {n_bytes} bytes + </s> = "
                        f"{n_bytes + 1} tokens",
                        f"演示模型和 byT5 读 UTF-8 字节：一个汉字 3 个词元，{n_bytes} 个字节加 </s> 共 {n_bytes + 1} 个词元"))
    for k, (x, ids) in enumerate(zip(starts, per_char)):
        for b, token in enumerate(ids):
            rect(x + b * (box + gap), y_bytes, box, 0.42, COLOURS["first"] if k == 0 else COLOURS["byte"],
                 byte_names([token])[0].removeprefix("0x"), str(token), size=7)
    rect(end + group_gap, y_bytes, 0.42, 0.42, COLOURS["special"], "</s>", str(eos), size=7)
    first = " ".join(byte_names(per_char[0]))
    ax.text(0, y_bytes - 0.42, tr(f"{chars[0]} = bytes {first} = ids {' '.join(map(str, per_char[0]))}: the model "
                                  "knows all 256 bytes, so no character is ever unknown",
                                  f"{chars[0]} = 字节 {first} = id {' '.join(map(str, per_char[0]))}："
                                  "字节只有 256 种，模型都认识，所以没有哪个汉字是“未知”的"),
            fontsize=8, color="#b45309", va="top")
    # 3. flan-T5's vocabulary: everything unknown
    pieces = [sp.piece(i) for i in zh_ids]
    heading(y_flan, tr(f"flan-T5 (T5's SentencePiece vocabulary, no Chinese in it): {len(zh_ids)} tokens",
                       f"flan-T5（T5 的 SentencePiece 词表，里面没有汉字）：{len(zh_ids)} 个词元"))
    x = 0.0
    for piece, token in zip(pieces, zh_ids):
        if piece == "<unk>":
            w = end - x - 0.55
            rect(x, y_flan, w, 0.42, COLOURS["unk"],
                 tr(f"<unk>   all {len(chars)} characters are one unknown token: the question is lost",
                    f"<unk>   {len(chars)} 个汉字合成一个“未知”词元：问题丢失了"), str(token), size=8)
        else:
            w = 0.42
            rect(x, y_flan, w, 0.42, COLOURS["special"] if piece == "</s>" else COLOURS["piece"], piece, str(token))
        x += w + 0.13
    # 4. the same question in English, for comparison
    heading(y_en, tr(f"the same question in English, in flan-T5's vocabulary: {len(en_ids)} tokens",
                     f"同一个问题用英文问，在 flan-T5 的词表里：{len(en_ids)} 个词元"))
    x = 0.0
    for token in en_ids:
        piece = sp.piece(token)
        w = max(0.42, 0.105 * len(piece) + 0.16)
        rect(x, y_en, w, 0.42, COLOURS["special"] if piece == "</s>" else COLOURS["piece"], piece, str(token))
        x += w + 0.08
    ax.set_xlim(-0.1, end + 0.6)
    ax.set_ylim(y_en - 0.5, y_chars + 0.75)
    fig.suptitle(tr(f"{QUESTION_ZH} (\"{QUESTION_EN}\") as two models see it",
                    f"同一个问题，在两个模型眼中：{QUESTION_ZH}"), fontsize=11)
    fig.tight_layout()
    save_figure(fig, out)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--zh", action="store_true", help="Chinese labels, for docs/zh/ (docs/img/zh/chinese_prompt.png)")
    p.add_argument("--out", help="where to draw (default docs/img/chinese_prompt.png; with --zh docs/img/zh/...)")
    args = p.parse_args()
    draw(Path(args.out or figure_path("chinese_prompt.png", args.zh)), zh=args.zh)


if __name__ == "__main__":
    main()
