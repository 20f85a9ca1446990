"""The masks and the position bias of one attention layer, and their sum, as heat maps.

    python docs/scripts/draw_masks.py                the demo model in out/demo (its learned position bias)
    python docs/scripts/draw_masks.py --model DIR    any T5 folder (or hub id)
    python docs/scripts/draw_masks.py --random       a random tiny model (the bias is then random too)

Decoder self-attention of block 0 over T = 20 positions whose last 4 are padding, one head: the padding mask and
the causal mask from minit5/model.py padding_mask and causal_mask, combined as T5.decode combines them, the
position bias from the block's RelativePositionBias, and the sum Stack.forward adds to the scores. Blocked cells
hold torch.finfo(float32).min; the maps show them in grey. Writes docs/img/attention_masks.png (with --zh, Chinese
labels: docs/img/zh/attention_masks.png).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (DEFAULT_MODEL, description_zh, figure_path, in_language, load, need_matplotlib,  # noqa: E402
                    save_figure, use_chinese_font)

from minit5.model import causal_mask, padding_mask  # noqa: E402

LENGTH, PADDED, HEAD = 20, 4, 0


def masks(model):
    """(padding (T, T), causal (T, T), combined mask, bias (T, T), sum (T, T)) for one row of the batch, one head."""
    dtype = torch.float32
    attention_mask = torch.ones(1, LENGTH, dtype=torch.long)
    attention_mask[:, LENGTH - PADDED:] = 0  # the last positions are padding
    pad = padding_mask(attention_mask, dtype)  # (1, 1, 1, T): blocks padded KEYS, for every query row
    causal = causal_mask(LENGTH, 0, dtype, torch.device("cpu"))  # (1, 1, T, T)
    combined = (causal + pad).clamp(min=torch.finfo(dtype).min)  # as T5.decode combines them
    with torch.no_grad():
        bias = model.decoder.blocks[0].position_bias(LENGTH, LENGTH)  # (1, H, T, T)
    total = bias + combined  # as Stack.forward adds them, once for every block
    square = lambda t: t.expand(1, -1, LENGTH, LENGTH)[0, 0] if t.shape[1] == 1 else t[0, HEAD]  # noqa: E731
    return square(pad), square(causal), square(combined), bias[0, HEAD], total[0, HEAD]


def draw(model, description: str, out: Path, zh: bool = False):
    plt = need_matplotlib()
    if zh:
        use_chinese_font(plt)
    tr = in_language(zh)
    import numpy as np

    pad, causal, _, bias, total = masks(model)
    blocked = torch.finfo(torch.float32).min
    fig, axes = plt.subplots(2, 2, figsize=(10, 9.6))
    finite = bias.numpy()
    vmax = float(np.abs(finite).max())
    panels = [(pad, tr(f"padding mask: the last {PADDED} keys are padding", f"填充掩码：最后 {PADDED} 个键是填充")),
              (causal, tr("causal mask: no key after the query", "因果掩码：看不到查询之后的键")),
              (bias, tr(f"position bias, head {HEAD} (learned, by bucket)", f"位置偏置，第 {HEAD} 个头（可学习，按桶取值）")),
              (total, tr("their sum, added to every block's scores", "三者之和，加到每一块的注意力分数上"))]
    cmap = plt.get_cmap("coolwarm").copy()
    cmap.set_bad("0.35")  # blocked cells
    for ax, (values, title) in zip(axes.flat, panels):
        values = values.numpy()
        data = np.ma.masked_invalid(np.where(values <= blocked / 2, np.nan, values))  # blocked -> grey
        image = ax.imshow(data, cmap=cmap, vmin=-vmax, vmax=vmax)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(tr("key position", "键的位置"))
        ax.set_ylabel(tr("query position", "查询的位置"))
        ax.set_xticks(range(0, LENGTH, 2))
        ax.set_yticks(range(0, LENGTH, 2))
    fig.colorbar(image, ax=axes, fraction=0.03, pad=0.02,
                 label=tr("added to the attention score (grey: blocked, finfo.min → probability 0)",
                          "加到注意力分数上的值（灰色：被挡住，finfo.min → 概率为 0）"))
    fig.suptitle(tr(f"decoder self-attention, block 0, of {description}: {LENGTH} positions",
                    f"{description}的解码器自注意力，第 0 块：{LENGTH} 个位置"), fontsize=10)
    save_figure(fig, out, trim=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model folder or hub id (default: {DEFAULT_MODEL})")
    p.add_argument("--random", action="store_true", help="use a random tiny model instead of --model")
    p.add_argument("--zh", action="store_true", help="Chinese labels, for docs/zh/ (docs/img/zh/attention_masks.png)")
    p.add_argument("--out", help="where to draw (default: docs/img/attention_masks.png, with --zh docs/img/zh/...)")
    args = p.parse_args()
    model, _, description = load(args.model, args.random)
    if args.zh:
        description = description_zh(args.model, args.random)
    draw(model.eval(), description, Path(args.out or figure_path("attention_masks.png", args.zh)), zh=args.zh)


if __name__ == "__main__":
    main()
