"""docs/img/lora.png: what LoRA trains, drawn to scale for flan-T5-small.

    python docs/scripts/lora_picture.py                draws the picture
    python docs/scripts/lora_picture.py --zh           the picture with Chinese labels (docs/img/zh/lora.png)
    python docs/scripts/lora_picture.py --table        the trained-parameter table of docs/training.md (--zh: Chinese)

Left: one attention projection q of flan-T5-small, W (384 x 512, frozen) beside the adapter's A (8 x 512) and B
(384 x 8), at the same scale. Right: how many parameters train, against the rank r, for LoRA on q,v and on every
linear layer, counted by building the model on the "meta" device and calling minit5/lora.py add_lora.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from common import figure_path, in_language, need_matplotlib, save_figure, use_chinese_font  # noqa: E402


def trainable_counts(ranks, targets, size="small"):
    """Trained parameters at each rank, and the parameters of the model without adapters."""
    import torch

    from minit5 import T5, T5Config
    from minit5.lora import add_lora
    counts = []
    for r in ranks:
        with torch.device("meta"):
            model = add_lora(T5(T5Config.flan_t5(size)), r=r, targets=targets)
        counts.append(sum(p.numel() for p in model.parameters() if p.requires_grad))
    total = sum(p.numel() for p in model.parameters()) - counts[-1]
    return counts, total


def markdown_table(zh: bool = False) -> str:
    """Trained parameters and AdamW state (two fp32 numbers per trained parameter), full against LoRA r = 8."""
    head = ("| flan-T5 | 训练的参数（r = 8） | AdamW 状态 |" if zh else "| flan-T5 | trained parameters (r = 8) | AdamW state |")
    rows = [head, "|---|---|---|"]
    for size in ("small", "base"):
        for targets, name in ((None, "全量微调" if zh else "full fine-tuning"),
                              (["q", "v"], "LoRA 作用于 q,v" if zh else "LoRA on q,v"),
                              ("all-linear", "LoRA 作用于 all-linear" if zh else "LoRA on all-linear")):
            counts, total = trainable_counts([8], targets or ["q"], size)
            trained = counts[0] if targets else total
            share = f"（{100 * trained / (total + counts[0]):.2f}%）" if zh else f" ({100 * trained / (total + counts[0]):.2f}%)"
            rows.append(f"| {size}{'，' if zh else ', '}{name} | {trained:,}{share if targets else ''} | "
                        f"{trained * 8 / 2 ** 20:,.1f} MiB |")
    return "\n".join(rows)


def markdown_table_zh() -> str:
    return markdown_table(zh=True)


def main():
    if "--table" in sys.argv:
        return print(markdown_table(zh="--zh" in sys.argv))
    zh = "--zh" in sys.argv
    plt = need_matplotlib()
    if zh:
        use_chinese_font(plt)
    tr = in_language(zh)
    from matplotlib.patches import Rectangle

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4), gridspec_kw=dict(width_ratios=[1.25, 1]))
    # -- left: W, B and A to scale (flan-T5-small: d_model 512, 6 heads x 64 = 384, r = 8)
    d_in, d_out, r = 512, 384, 8
    left.add_patch(Rectangle((0, 0), d_in, d_out, color="#c9c9c9"))
    left.text(d_in / 2, d_out / 2, tr(f"W\n{d_out} × {d_in}\nfrozen\n{d_in * d_out:,} numbers",
                                       f"W\n{d_out} × {d_in}\n冻结\n{d_in * d_out:,} 个数"), ha="center",
              va="center", fontsize=11)
    x0 = d_in + 120
    left.add_patch(Rectangle((x0, 0), r, d_out, color="#e07b39"))  # B: (out, r)
    left.text(x0 + 4, -10, tr(f"B  {d_out} × {r}, starts at 0", f"B  {d_out} × {r}，初始为 0"), ha="left", va="top", fontsize=10, color="#b3541e")
    left.add_patch(Rectangle((x0 + 40, d_out - r), d_in, r, color="#3b75af"))  # A: (r, in)
    left.text(x0 + 40 + d_in / 2, d_out - r - 14,
              tr(f"A   {r} × {d_in}   random (Kaiming-uniform)", f"A   {r} × {d_in}   随机初始化（Kaiming 均匀分布）"),
              ha="center", va="top",
              fontsize=10, color="#2a5683")
    left.text(x0 + 40 + d_in / 2, d_out / 2 - 40, tr(f"ΔW = (α / r) · B A\n{d_out} × {d_in}, rank ≤ {r}\n"
                                                      f"{r * (d_in + d_out):,} numbers train",
                                                      f"ΔW = (α / r) · B A\n{d_out} × {d_in}，秩 ≤ {r}\n"
                                                      f"训练 {r * (d_in + d_out):,} 个数"),
              ha="center", va="center", fontsize=11)
    left.text(d_in + 60, d_out / 2, "+", ha="center", va="center", fontsize=22)
    left.set_xlim(-10, x0 + 40 + d_in + 10)
    left.set_ylim(-45, d_out + 30)
    left.set_aspect("equal")
    left.axis("off")
    left.set_title(tr("one q projection of flan-T5-small, to scale: W x + (α/r) B A x",
                      "flan-T5-small 的一个 q 投影，按比例绘制：W x + (α/r) B A x"), fontsize=11)

    # -- right: trainable parameters against r
    ranks = [1, 2, 4, 8, 16, 32, 64]
    for targets, label, style in ((["q", "v"], tr("LoRA on q, v (peft's default)", "LoRA 作用于 q、v（peft 的默认）"), "o-"),
                                  ("all-linear", tr("LoRA on every linear layer", "LoRA 作用于每个线性层"), "s-")):
        counts, total = trainable_counts(ranks, targets)
        right.plot(ranks, counts, style, label=label)
    right.axhline(total, color="black", linestyle="--",
                  label=tr(f"full fine-tuning ({total / 1e6:.1f}M)", f"全量微调（{total / 1e6:.1f}M）"))
    right.set_xscale("log", base=2)
    right.set_yscale("log")
    right.set_xticks(ranks, [str(r) for r in ranks])
    right.set_xlabel(tr("rank r", "秩 r"))
    right.set_ylabel(tr("trained parameters", "训练的参数量"))
    right.set_title(tr("flan-T5-small: what trains", "flan-T5-small：训练多少参数"), fontsize=11)
    right.grid(alpha=0.3, which="both")
    right.legend(fontsize=9, loc="lower right")
    fig.tight_layout()
    save_figure(fig, figure_path("lora.png", zh))


if __name__ == "__main__":
    main()
