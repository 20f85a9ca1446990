"""Span corruption in colour: which words are kept, masked, replaced by sentinels, and what the target is.

    python docs/scripts/draw_span_corruption.py [--seed 0]    writes docs/img/span_corruption.png (needs matplotlib)
    python docs/scripts/draw_span_corruption.py --zh          Chinese labels: docs/img/zh/span_corruption.png

The mask and the sentinels are made by minit5/data.py (random_spans_noise_mask, apply_noise_mask) on the same
one-token-per-word sentence as the worked example in docs/training.md (docs/scripts/span_corruption_example.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, figure_path, in_language, need_matplotlib, save_figure, use_chinese_font  # noqa: E402
from span_corruption_example import SENTENCE, WordTokenizer  # noqa: E402

sys.path.insert(0, str(ROOT))
from minit5.data import apply_noise_mask, random_spans_noise_mask  # noqa: E402

COLOURS = {"kept": "#dfe6ee", "masked": "#f5a65b", "sentinel": "#5bb974", "eos": "#9e9e9e"}


def rows_of_boxes(tok, ids, mask=None):
    """[(text, kind)] for a row of token ids; mask (original row only) marks the masked words."""
    out = []
    for k, i in enumerate(ids):
        text = tok.show([i])
        if text.startswith("<extra_id_"):
            kind = "sentinel"
            text = f"<extra_id_{tok.vocab_size - 1 - i}>"
        elif i == tok.eos_id:
            kind = "eos"
        elif mask is not None:
            kind = "masked" if mask[k] else "kept"
        else:
            kind = None  # decided by the caller
        out.append((text, kind))
    return out


def draw(out: Path, seed: int, zh: bool = False):
    plt = need_matplotlib()
    if zh:
        use_chinese_font(plt)
    tr = in_language(zh)
    from matplotlib.patches import FancyBboxPatch, Patch

    words = SENTENCE.split()
    tok = WordTokenizer(words)
    tokens = tok.encode(SENTENCE, add_eos=False)
    mask = random_spans_noise_mask(len(tokens), 0.15, 3.0, np.random.default_rng(seed))
    inputs, targets = apply_noise_mask(tokens, mask, tok)
    original = rows_of_boxes(tok, tokens, mask)
    enc = [(t, k or "kept") for t, k in rows_of_boxes(tok, inputs)]
    dec = [(t, k or "masked") for t, k in rows_of_boxes(tok, targets)]

    fig, ax = plt.subplots(figsize=(11, 5.4))
    ax.axis("off")
    x_max, y = 11.0, 0.0
    char_w, height = 0.085, 0.42

    def row(items, y, label):
        weight = "normal" if zh else "bold"  # the usual CJK fonts have no bold: Latin bold among them looks odd
        ax.text(0, y + height / 2 + 0.28, label, fontsize=10, fontweight=weight, va="bottom")
        x = 0.0
        for text, kind in items:
            w = max(0.3, char_w * len(text) + 0.16)
            if x + w > x_max:  # wrap
                x, y = 0.0, y - height - 0.14
            ax.add_patch(FancyBboxPatch((x, y - height / 2), w, height, boxstyle="round,pad=0.0,rounding_size=0.05",
                                        facecolor=COLOURS[kind], edgecolor="0.45", linewidth=0.6))
            ax.text(x + w / 2, y, text, ha="center", va="center", fontsize=8)
            x += w + 0.05
        return y - height - 0.9

    y = row(original, y, tr(f"original text ({len(tokens)} tokens, one per word here; T5 uses SentencePiece pieces)",
                            f"原文（{len(tokens)} 个词元，这里一个词一个词元；T5 用的是 SentencePiece 子词）"))
    y = row(enc, y, tr(f"encoder input ({len(inputs)} tokens): each masked span becomes one sentinel",
                       f"编码器输入（{len(inputs)} 个词元）：每个被遮盖的片段换成一个哨兵词元"))
    y = row(dec, y, tr(f"decoder target ({len(targets)} tokens): each sentinel, then the words it hid",
                       f"解码器目标（{len(targets)} 个词元）：每个哨兵词元，后面跟着它遮住的词"))
    ax.set_xlim(-0.1, x_max + 0.1)
    ax.set_ylim(y + 0.5, 1.0)
    ax.legend(handles=[Patch(facecolor=COLOURS[k], edgecolor="0.45", label=label) for k, label in
                       (("kept", tr("kept", "保留")), ("masked", tr("masked (noise)", "遮盖（噪声）")),
                        ("sentinel", tr("sentinel <extra_id_i>", "哨兵词元 <extra_id_i>")),
                        ("eos", tr("</s> (EOS)", "</s>（EOS）")))], loc="lower right", ncol=4, fontsize=9, frameon=False)
    fig.suptitle(tr(f"T5 span corruption by minit5/data.py: {int(mask.sum())} of {len(tokens)} tokens masked "
                    f"(noise density 0.15, mean span 3), seed {seed}",
                    f"minit5/data.py 的 T5 片段破坏：{len(tokens)} 个词元中遮盖了 {int(mask.sum())} 个"
                    f"（噪声密度 0.15，平均片段长度 3），随机种子 {seed}"), fontsize=10)
    fig.tight_layout()
    save_figure(fig, out)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--zh", action="store_true", help="Chinese labels, for docs/zh/ (docs/img/zh/span_corruption.png)")
    p.add_argument("--out", help="where to draw (default: docs/img/span_corruption.png, with --zh docs/img/zh/...)")
    args = p.parse_args()
    draw(Path(args.out or figure_path("span_corruption.png", args.zh)), args.seed, zh=args.zh)


if __name__ == "__main__":
    main()
