"""The encoder-decoder block diagram of T5, with its norms and residual connections, labelled from the code.

    python docs/scripts/draw_model_diagram.py        writes docs/img/model_diagram.png (needs matplotlib)
    python docs/scripts/draw_model_diagram.py --zh   its Chinese variant docs/img/zh/model_diagram.png (a CJK font)

The boxes are the sublayers of minit5/model.py Block, in the order Block.forward calls them, and their names are
read from a flan-T5-small model built on the meta device (T5Config.flan_t5("small")): attribute names, widths,
head counts and block counts come from the code, not from this script.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, figure_path, in_language, need_matplotlib, save_figure, use_chinese_font  # noqa: E402

sys.path.insert(0, str(ROOT))
from minit5 import T5, T5Config  # noqa: E402
from minit5.checkpoint import skip_random_init  # noqa: E402

COLOURS = {"norm": "#f6d9a8", "attn": "#a9c8f0", "cross": "#c7b3ef", "ffn": "#b8e2b0", "io": "#e6e6e6"}


def sublayers(block) -> list[tuple[str, str, str]]:
    """(norm name, sublayer name, kind) in the order Block.forward applies them; each is x = x + sublayer(norm(x))."""
    order = [("self_attn_norm", "self_attn", "attn"), ("cross_attn_norm", "cross_attn", "cross"),
             ("ffn_norm", "ffn", "ffn")]
    return [(n, s, kind) for n, s, kind in order if hasattr(block, s)]


def draw(out: Path, zh: bool = False):
    plt = need_matplotlib()
    if zh:
        use_chinese_font(plt)
    tr = in_language(zh)
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    config = T5Config.flan_t5("small")
    with torch.device("meta"), skip_random_init():
        model = T5(config)
    enc_block, dec_block = model.encoder.blocks[0], model.decoder.blocks[0]
    D, H, Dh, F, V = config.d_model, config.num_heads, config.d_kv, config.d_ff, config.vocab_size
    labels = {
        "self_attn": (tr(f"self-attention ({H} heads × {Dh})\n+ position bias + padding mask",
                         f"自注意力（{H} 个头 × {Dh}）\n+ 位置偏置 + 填充掩码"), "attn"),
        "cross_attn": (tr(f"cross-attention ({H} heads)\nqueries: decoder, keys/values: encoder",
                          f"交叉注意力（{H} 个头）\n查询来自解码器，键/值来自编码器"), "cross"),
        "ffn": (tr(f"feed-forward, gated GELU\n{D} → {F} → {D}", f"前馈网络，门控 GELU\n{D} → {F} → {D}"), "ffn"),
    }
    dec_labels = dict(labels, self_attn=(tr(f"causal self-attention ({H} heads)\n+ position bias + causal mask",
                                            f"因果自注意力（{H} 个头）\n+ 位置偏置 + 因果掩码"), "attn"))

    fig, ax = plt.subplots(figsize=(10, 8.6))
    ax.set_xlim(0, 11)
    ax.axis("off")
    W, BH = 3.0, 0.42  # box width and height

    def box(x, y, text, kind, w=W, h=BH, size=8.5):
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
                                    facecolor=COLOURS[kind], edgecolor="0.3", linewidth=0.9))
        ax.text(x, y, text, ha="center", va="center", fontsize=size)

    def arrow(x0, y0, x1, y1, style="-|>", colour="0.2", rad=0.0, lw=1.0):
        ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle=style, mutation_scale=10, color=colour,
                                     linewidth=lw, connectionstyle=f"arc3,rad={rad}"))

    def plus(x, y):
        ax.add_patch(plt.Circle((x, y), 0.13, facecolor="white", edgecolor="0.2", linewidth=1.0))
        ax.text(x, y, "+", ha="center", va="center", fontsize=10)

    def stack(x, y0, block, names, depth, title):
        """One stack, bottom to top; returns (y of the stack output, {sublayer: y of its box})."""
        y = y0
        frame_bottom = y - 0.12
        where = {}
        for norm, sub, _ in sublayers(block):
            text, kind = names[sub]
            arrow(x, y, x, y + 0.33)
            box(x, y + 0.55, f"RMSNorm ({norm})", "norm", h=0.34, size=8)
            arrow(x, y + 0.72, x, y + 0.86)
            h = 0.56
            box(x, y + 0.86 + h / 2, f"{text}\n({sub})", kind, h=h, size=8)
            where[sub] = y + 0.86 + h / 2
            top = y + 0.86 + h
            arrow(x, top, x, top + 0.14)
            plus(x, top + 0.27)
            # the residual path: from below the norm, around the sublayer, into the sum
            side = x - W / 2 - 0.25
            ax.plot([x, side, side], [y + 0.12, y + 0.12, top + 0.27], color="#c0392b", linewidth=1.2)
            arrow(side, top + 0.27, x - 0.13, top + 0.27, colour="#c0392b", lw=1.2)
            y = top + 0.40
        ax.add_patch(FancyBboxPatch((x - W / 2 - 0.5, frame_bottom), W + 1.0, y - frame_bottom, boxstyle="round,pad=0.05",
                                    facecolor="none", edgecolor="0.55", linestyle="--", linewidth=1.0))
        ax.text(x + W / 2 + 0.42, frame_bottom + 0.1, f"× {depth}", ha="right", va="bottom", fontsize=11,
                color="0.3", fontweight="bold")
        ax.text(x - W / 2 - 0.45, frame_bottom + 0.1, title, ha="left", va="bottom", fontsize=8, color="0.3")
        arrow(x, y, x, y + 0.3)
        box(x, y + 0.5, "RMSNorm (final_norm)", "norm", h=0.34, size=8)
        return y + 0.67, where

    # encoder (left)
    ex, dx = 2.6, 7.9
    box(ex, 0.45, tr(f"input ids (B, S): the prompt\nembed: shared table {V} × {D}",
                     f"输入 id (B, S)：提示\n嵌入：共享的 {V} × {D} 表"), "io", h=0.55)
    enc_top, _ = stack(ex, 0.95, enc_block, labels, config.num_layers, tr("encoder block (Block)", "编码器块（Block）"))
    box(ex, enc_top + 0.45, tr(f"encoder output (B, S, {D})", f"编码器输出 (B, S, {D})"), "io")
    # decoder (right)
    box(dx, 0.45, tr("decoder input ids (B, T): <pad>, answer so far\nembed: the same shared table",
                     "解码器输入 id (B, T)：<pad> 和已写出的回答\n嵌入：同一张共享表"), "io", h=0.55)
    dec_top, where = stack(dx, 0.95, dec_block, dec_labels, config.num_decoder_layers,
                           tr("decoder block (Block)", "解码器块（Block）"))
    box(dx, dec_top + 0.4, f"lm_head: {D} → {V}", "io")
    arrow(dx, dec_top + 0.61, dx, dec_top + 0.85)
    box(dx, dec_top + 1.05, tr("logits (B, T, V): the next token", "logits (B, T, V)：下一个词元"), "io")
    # the encoder output feeds every decoder block's cross-attention
    arrow(ex + W / 2, enc_top + 0.45, dx - W / 2, where["cross_attn"], colour="#6c3fc4", rad=-0.25, lw=1.6)
    ax.text(ex, enc_top + 1.05,
            tr("keys and values\nfor cross-attention\nin every decoder block", "交叉注意力的键和值，\n送往每一个解码器块"),
            ha="center", fontsize=8.5, color="#6c3fc4")
    ax.plot([], [], color="#c0392b", label=tr("residual: x = x + sublayer(RMSNorm(x))", "残差：x = x + sublayer(RMSNorm(x))"))
    ax.legend(loc="upper left", fontsize=9, frameon=False)
    ax.set_ylim(0.1, dec_top + 1.35)
    fig.suptitle(tr(f"T5 / flan-T5-small as built by minit5/model.py (d_model {D}, {config.num_layers} + "
                    f"{config.num_decoder_layers} blocks); pre-norm: only the sublayer input is normalised",
                    f"minit5/model.py 搭建的 T5 / flan-T5-small（d_model {D}，{config.num_layers} + "
                    f"{config.num_decoder_layers} 个块）；预归一化：只归一化子层的输入"), fontsize=10)
    fig.tight_layout()
    save_figure(fig, out)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--zh", action="store_true", help="Chinese labels, for docs/zh/ (docs/img/zh/model_diagram.png)")
    p.add_argument("--out", help="where to draw (default: docs/img/model_diagram.png, with --zh docs/img/zh/...)")
    args = p.parse_args()
    draw(Path(args.out or figure_path("model_diagram.png", args.zh)), zh=args.zh)


if __name__ == "__main__":
    main()
