"""The rounding error of int8 weights (minit5/quant.py), drawn for docs/performance.md.

    python docs/scripts/draw_int8_error.py                the demo model in out/demo
    python docs/scripts/draw_int8_error.py --model DIR    any T5 folder
    python docs/scripts/draw_int8_error.py --random       a random tiny model

Left: every quantized weight's error W - Q·scale in units of its row's scale, over all of the model's int8
layers: it lies in [-0.5, 0.5] (half a step), nearly uniform. Right: each row's relative error
||W_row - Q_row·scale|| / ||W_row|| with one scale per output channel (what minit5 does) and with one scale for
the whole matrix: small rows lose most of their levels to a shared scale. Writes docs/img/int8_error.png (with
--zh, Chinese labels: docs/img/zh/int8_error.png).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (DEFAULT_MODEL, description_zh, figure_path, in_language, load, need_matplotlib,  # noqa: E402
                    save_figure, use_chinese_font)

from minit5.quant import KEEP_FP32, Int8Linear  # noqa: E402


def errors(model):
    """(error in steps of all int8 weights, per-row relative error per-channel, the same per-tensor)."""
    steps, per_channel, per_tensor = [], [], []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear) or name.split(".")[-1] in KEEP_FP32:
            continue
        w = module.weight.detach().float()  # (out, in)
        q = Int8Linear.from_linear(module)
        dequantized = q.weight.float() * q.scale[:, None]
        steps.append(((w - dequantized) / q.scale[:, None]).flatten())
        per_channel.append((w - dequantized).norm(dim=1) / w.norm(dim=1))
        scale = w.abs().max() / 127  # one scale for the whole matrix
        shared = torch.round(w / scale).clamp(-127, 127) * scale
        per_tensor.append((w - shared).norm(dim=1) / w.norm(dim=1))
    return torch.cat(steps), torch.cat(per_channel), torch.cat(per_tensor)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"model folder (default: {DEFAULT_MODEL})")
    parser.add_argument("--random", action="store_true", help="use a random tiny model instead of --model")
    parser.add_argument("--zh", action="store_true", help="Chinese labels, for docs/zh/ (docs/img/zh/int8_error.png)")
    parser.add_argument("--out", help="where to draw (default: docs/img/int8_error.png, with --zh docs/img/zh/...)")
    args = parser.parse_args()
    plt = need_matplotlib()
    if args.zh:
        use_chinese_font(plt)
    tr = in_language(args.zh)
    model, _, description = load(args.model, args.random)
    title_model = description_zh(args.model, args.random) if args.zh else description
    steps, per_channel, per_tensor = errors(model)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    left.hist(steps.numpy(), bins=50, color="#4c72b0")
    left.set_xlabel(tr("W − Q·scale, in steps of the row's scale", "W − Q·scale，以所在行的 scale 为单位"))
    left.set_ylabel(tr("weights", "权重个数"))
    left.set_title(tr(f"rounding error of {len(steps):,} int8 weights", f"{len(steps):,} 个 int8 权重的舍入误差"))
    bins = torch.logspace(-3, -1, 60).numpy()
    right.hist(per_tensor.numpy(), bins=bins, alpha=0.6, color="#dd8452",
               label=tr("one scale per matrix", "整个矩阵一个 scale"))
    right.hist(per_channel.numpy(), bins=bins, alpha=0.6, color="#4c72b0",
               label=tr("one scale per output channel", "每个输出通道一个 scale"))
    right.set_xscale("log")
    right.set_xlabel(tr("relative error of a row, ||W_row − dequantized|| / ||W_row||",
                        "一行的相对误差，||W_row − 反量化结果|| / ||W_row||"))
    right.set_ylabel(tr("rows", "行数"))
    right.set_title(tr("per channel vs one scale per matrix", "逐通道缩放与整个矩阵一个缩放的对比"))
    right.legend()
    fig.suptitle(tr(f"int8 weights of {description} (docs/scripts/draw_int8_error.py)",
                    f"{title_model}的 int8 权重（docs/scripts/draw_int8_error.py）"), fontsize=9)
    fig.tight_layout()
    save_figure(fig, args.out or figure_path("int8_error.png", args.zh), f"{description}: {len(steps):,} weights; median row error per channel "
                               f"{per_channel.median():.2%}, one scale per matrix {per_tensor.median():.2%}")


if __name__ == "__main__":
    main()
