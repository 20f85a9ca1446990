"""Why minit5/fast.py lays out decoder weights as it does: one decode-step product, three ways, on this machine.

    python bench/layouts.py [--threads 2]

For flan-T5-small's shapes (512 -> 1536 fused q|k|v, 1024 -> 512 FFN down, 512 -> 32128 output layer) and
1, 4 and 16 rows (greedy, 4 beams, a batch), times in microseconds (median of 30):
    rows           F.linear(x, W) with W stored (out, in), torch's usual layout
    column-major   F.linear(x, W) with W stored (in, out)
    tall W @ xᵀ    torch.mm(W, xᵀ)ᵀ with W stored (out, in)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import median_time, positive_int  # noqa: E402  (bench/run.py's timer and argument check)

SHAPES = [(512, 1536), (1024, 512), (512, 32128)]


def median_us(fn, reps=30):
    return median_time(fn, reps, warmup=3) * 1e6


def table(dtype=torch.float32) -> str:
    lines = [f"| {str(dtype)[6:]} product | rows | rows (µs) | column-major (µs) | tall W @ xᵀ (µs) |",
             "|---|---|---:|---:|---:|"]
    for n_in, n_out in SHAPES:
        weight = torch.randn(n_out, n_in).to(dtype)
        column = weight.t().contiguous().t()
        for rows in (1, 4, 16):
            x = torch.randn(rows, 1, n_in).to(dtype)
            flat = x.view(rows, n_in)
            times = [median_us(lambda: F.linear(x, weight)), median_us(lambda: F.linear(x, column)),
                     median_us(lambda: torch.mm(weight, flat.t()).t())]
            best = min(times)
            cells = [f"**{t:.0f}**" if t == best else f"{t:.0f}" for t in times]
            lines.append(f"| {n_in} → {n_out} | {rows} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=positive_int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads")
    print(table(torch.float32))
    print()
    print(table(torch.bfloat16))
