"""Relative-position buckets of T5, computed by minit5 itself (minit5/model.py relative_position_bucket).

    python docs/scripts/plot_buckets.py            draws docs/img/position_buckets.png (needs matplotlib)
    python docs/scripts/plot_buckets.py --table    prints the markdown table used in docs/architecture.md
    python docs/scripts/plot_buckets.py --table --zh    the same in Chinese, for docs/zh/architecture.md

Defaults are every T5's: 32 buckets, max_distance 128. relative position = key position - query position.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, need_matplotlib  # noqa: E402

from minit5.model import relative_position_bucket  # noqa: E402

NUM_BUCKETS, MAX_DISTANCE = 32, 128


def buckets(relative, bidirectional: bool) -> list[int]:
    rel = torch.tensor(relative)
    return relative_position_bucket(rel, bidirectional, NUM_BUCKETS, MAX_DISTANCE).tolist()


def _ranges(distances, ids):
    """[(bucket, first distance, last distance)] for runs of equal bucket ids."""
    runs = []
    for d, b in zip(distances, ids):
        if runs and runs[-1][0] == b:
            runs[-1][2] = d
        else:
            runs.append([b, d, d])
    return runs


def _fmt(first, last, horizon):
    if last == horizon:
        return f"≥ {first}"
    return str(first) if first == last else f"{first}–{last}"


def markdown_table(horizon: int = 1000, zh: bool = False) -> str:
    """Which distances share a bucket: encoder keys before / after the query, decoder keys before it."""
    distances = list(range(horizon + 1))
    if zh:
        names = ("编码器，键在查询之前", "编码器，键在查询之后", "解码器，键在查询之前")
        header = "| 注意力 | 每个距离一个桶 | 对数间隔：距离 → 桶 |"
    else:
        names = ("encoder, key before the query", "encoder, key after the query", "decoder, key before the query")
        header = "| attention | one bucket per distance | log-spaced: distances → bucket |"
    rows = [(names[0], -1, True), (names[1], 1, True), (names[2], -1, False)]
    lines = [header, "|---|---|---|"]
    for name, sign, bidirectional in rows:
        dists = distances[1:] if sign > 0 else distances  # distance 0 (the query itself) counts as "before"
        runs = _ranges(dists, buckets([sign * d for d in dists], bidirectional))
        exact = [(b, first) for b, first, last in runs if first == last and last != horizon]
        exact_text = f"{exact[0][1]}–{exact[-1][1]} → {exact[0][0]}–{exact[-1][0]}"
        log_runs = [(b, first, last) for b, first, last in runs if not (first == last and last != horizon)]
        log_text = ", ".join(f"{_fmt(first, last, horizon)} → {b}" for b, first, last in log_runs)
        lines.append(f"| {name} | {exact_text} | {log_text} |")
    return "\n".join(lines)


def markdown_table_zh() -> str:
    return markdown_table(zh=True)


def plot(out: Path, horizon: int = 160):
    plt = need_matplotlib()
    rel = list(range(-horizon, horizon + 1))
    enc = buckets(rel, True)
    dec = buckets(rel, False)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    axes[0].step(rel, enc, where="mid", color="tab:blue")
    axes[0].set_title("encoder (bidirectional): 16 buckets per direction")
    past = [r for r in rel if r <= 0]
    axes[1].step(past, [b for r, b in zip(rel, dec) if r <= 0], where="mid", color="tab:orange",
                 label="keys at or before the query")
    axes[1].step([r for r in rel if r > 0], [b for r, b in zip(rel, dec) if r > 0], where="mid", color="0.6",
                 linestyle="--", label="future keys: bucket 0, masked anyway")
    axes[1].set_title("decoder (causal): 32 buckets, past only")
    axes[1].legend(loc="upper right", fontsize=9)
    for ax in axes:
        ax.set_xlabel("relative position = key position − query position")
        ax.grid(alpha=0.3)
        ax.set_xlim(-horizon, horizon)
    axes[0].axvline(-MAX_DISTANCE, color="0.5", linewidth=0.8, linestyle=":")
    axes[0].axvline(MAX_DISTANCE, color="0.5", linewidth=0.8, linestyle=":")
    axes[1].axvline(-MAX_DISTANCE, color="0.5", linewidth=0.8, linestyle=":")
    axes[0].axvspan(-7.5, 7.5, color="0.9", zorder=0)  # distances 0..7: a bucket each
    axes[1].axvspan(-15.5, 0.5, color="0.9", zorder=0)  # distances 0..15: a bucket each
    axes[0].set_ylabel("bucket id (row of the bias table)")
    fig.suptitle(f"T5 relative position buckets ({NUM_BUCKETS} buckets, max_distance {MAX_DISTANCE}; "
                 "grey band: one bucket per distance; dotted: ±max_distance)", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", action="store_true", help="print the markdown table instead of drawing")
    p.add_argument("--zh", action="store_true", help="with --table: the table in Chinese (docs/zh/architecture.md)")
    p.add_argument("--out", default=str(ROOT / "docs/img/position_buckets.png"))
    args = p.parse_args()
    if args.table:
        print(markdown_table(zh=args.zh))
    else:
        plot(Path(args.out))


if __name__ == "__main__":
    main()
