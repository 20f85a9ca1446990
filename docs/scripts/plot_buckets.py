"""Relative-position buckets of T5, computed by minit5 itself (minit5/model.py relative_position_bucket).

    python docs/scripts/plot_buckets.py            draws docs/img/position_buckets.png (needs matplotlib)
    python docs/scripts/plot_buckets.py --zh       its Chinese variant docs/img/zh/position_buckets.png (a CJK font)
    python docs/scripts/plot_buckets.py --table    prints the markdown table used in docs/architecture.md
    python docs/scripts/plot_buckets.py --table --zh    the same in Chinese, for docs/zh/architecture.md
    python docs/scripts/plot_buckets.py --summary [--zh]  where the last bucket starts, and the unused bucket

Defaults are every T5's: 32 buckets, max_distance 128. relative position = key position - query position.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import figure_path, in_language, need_matplotlib, save_figure, use_chinese_font  # noqa: E402

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


def last_bucket_start(bidirectional: bool, sign: int = -1, horizon: int = 1000) -> tuple[int, int]:
    """(the last bucket id, the smallest distance that falls into it) for keys on one side of the query."""
    ids = buckets([sign * d for d in range(horizon + 1)], bidirectional)
    last = ids[-1]
    return last, next(d for d, b in enumerate(ids) if b == last)


def unused_buckets(bidirectional: bool, horizon: int = 1000) -> list[int]:
    """Bucket ids that no relative position in [-horizon, horizon] ever gets."""
    used = set(buckets(list(range(-horizon, horizon + 1)), bidirectional))
    return [b for b in range(NUM_BUCKETS) if b not in used]


def summary(zh: bool = False) -> str:
    """Two facts a reader of the table would miss: the last bucket starts well before max_distance, and one
    encoder bucket is never used."""
    enc_last, enc_start = last_bucket_start(True)
    enc_after_last, enc_after_start = last_bucket_start(True, sign=+1)
    dec_last, dec_start = last_bucket_start(False)
    assert enc_start == enc_after_start
    (unused,) = unused_buckets(True)
    first_after = buckets([1], True)[0]
    if zh:
        return (f"- 最后一个桶并不是从 `relative_attention_max_distance` = {MAX_DISTANCE} 开始的：编码器里从距离 "
                f"**{enc_start}** 起（查询之前为桶 {enc_last}，之后为桶 {enc_after_last}），解码器里从距离 "
                f"**{dec_start}** 起（桶 {dec_last}）。按对数公式，`max_distance` 恰好落在“最后一个桶之后的那个桶”"
                f"的起点，所以真正的最后一个桶早一个对数步长就开始了；从这里往外，所有键得到的偏置都相同。\n"
                f"- 编码器的桶 **{unused}** 从来用不到：距离 0（查询自身）算作“之前”，落在桶 0，所以“之后”"
                f"那一半从距离 1 → 桶 {first_after} 开始。")
    return (f"- The last bucket does not start at `relative_attention_max_distance` = {MAX_DISTANCE}: it starts at "
            f"distance **{enc_start}** in the encoder (bucket {enc_last} before the query, {enc_after_last} after it) "
            f"and **{dec_start}** in the decoder (bucket {dec_last}). The log formula puts `max_distance` where a bucket "
            f"one past the last would begin, so the last real bucket starts one log-step earlier; every key from "
            f"there on gets the same bias.\n"
            f"- Encoder bucket **{unused}** is never used: distance 0 (the query itself) counts as \"before\" and "
            f"gets bucket 0, so the \"after\" half starts at distance 1 → bucket {first_after}.")


def summary_zh() -> str:
    return summary(zh=True)


def plot(out: Path, horizon: int = 160, zh: bool = False):
    plt = need_matplotlib()
    if zh:
        use_chinese_font(plt)
    tr = in_language(zh)
    rel = list(range(-horizon, horizon + 1))
    enc = buckets(rel, True)
    dec = buckets(rel, False)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    axes[0].step(rel, enc, where="mid", color="tab:blue")
    axes[0].set_title(tr("encoder (bidirectional): 16 buckets per direction", "编码器（双向）：每个方向 16 个桶"))
    past = [r for r in rel if r <= 0]
    axes[1].step(past, [b for r, b in zip(rel, dec) if r <= 0], where="mid", color="tab:orange",
                 label=tr("keys at or before the query", "查询位置及其之前的键"))
    axes[1].step([r for r in rel if r > 0], [b for r, b in zip(rel, dec) if r > 0], where="mid", color="0.6",
                 linestyle="--", label=tr("future keys: bucket 0, masked anyway", "未来的键：桶 0，反正会被掩码遮住"))
    axes[1].set_title(tr("decoder (causal): 32 buckets, past only", "解码器（因果）：32 个桶全部留给过去"))
    axes[1].legend(loc="upper right", fontsize=9)
    for ax in axes:
        ax.set_xlabel(tr("relative position = key position − query position", "相对位置 = 键的位置 − 查询的位置"))
        ax.grid(alpha=0.3)
        ax.set_xlim(-horizon, horizon)
    axes[0].axvline(-MAX_DISTANCE, color="0.5", linewidth=0.8, linestyle=":")
    axes[0].axvline(MAX_DISTANCE, color="0.5", linewidth=0.8, linestyle=":")
    axes[1].axvline(-MAX_DISTANCE, color="0.5", linewidth=0.8, linestyle=":")
    axes[0].axvspan(-7.5, 7.5, color="0.9", zorder=0)  # distances 0..7: a bucket each
    axes[1].axvspan(-15.5, 0.5, color="0.9", zorder=0)  # distances 0..15: a bucket each
    axes[0].set_ylabel(tr("bucket id (row of the bias table)", "桶编号（偏置表的行）"))
    fig.suptitle(tr(f"T5 relative position buckets ({NUM_BUCKETS} buckets, max_distance {MAX_DISTANCE}; "
                    "grey band: one bucket per distance; dotted: ±max_distance)",
                    f"T5 的相对位置分桶（{NUM_BUCKETS} 个桶，max_distance {MAX_DISTANCE}；"
                    "灰色带：每个距离一个桶；点线：±max_distance）"), fontsize=10)
    fig.tight_layout()
    save_figure(fig, out)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", action="store_true", help="print the markdown table instead of drawing")
    p.add_argument("--summary", action="store_true", help="print where the last bucket starts, and the unused one")
    p.add_argument("--zh", action="store_true", help="in Chinese (docs/zh/architecture.md): the table, the summary or "
                   "the figure (docs/img/zh/position_buckets.png)")
    p.add_argument("--out", help="where to draw (default: docs/img/position_buckets.png, with --zh docs/img/zh/...)")
    args = p.parse_args()
    if args.table:
        print(markdown_table(zh=args.zh))
    elif args.summary:
        print(summary(zh=args.zh))
    else:
        plot(Path(args.out or figure_path("position_buckets.png", args.zh)), zh=args.zh)


if __name__ == "__main__":
    main()
