"""One attention head on 3 tokens, with numbers small enough to check by hand, computed by minit5/model.py.

    python docs/scripts/worked_example.py          prints the block used in docs/worked-example.md
    python docs/scripts/worked_example.py --zh     the same in Chinese, for docs/zh/worked-example.md

The head is 2 numbers wide (real heads are 64) and q, k, v, the bias table are drawn from a seeded generator and
rounded to one decimal, so every product can be redone on paper. The bucket ids come from
minit5/model.py relative_position_bucket with T5's encoder settings (32 buckets, max_distance 128), the output from
minit5/model.py attention; the script checks that its step-by-step arithmetic gives the same numbers.
Then it computes one far bucket (distance 40 in the encoder, 100 in the decoder) line by line as the function does.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from minit5.model import attention, relative_position_bucket  # noqa: E402

NUM_BUCKETS, MAX_DISTANCE = 32, 128
AGREE, AGREE_TEXT = 1e-6, "1e-6"  # the hand arithmetic and minit5's attention function agree to within this, on any CPU
TOKENS = ["Io", "orbits", "Jupiter"]


def rounded(generator, *shape):
    return torch.randn(*shape, generator=generator).round(decimals=1)


def fmt(t) -> str:
    """A 1-D or 2-D tensor as rows of numbers with 2 decimals."""
    if t.dim() == 1:
        return "[" + ", ".join(f"{x:6.2f}" for x in t.tolist()) + "]"
    return "\n".join("    " + fmt(row) for row in t)


def attention_example(zh: bool = False) -> list[str]:
    g = torch.Generator().manual_seed(3)
    q, k, v = rounded(g, 3, 2), rounded(g, 3, 2), rounded(g, 3, 2)  # (T, Dh) for one head: 3 tokens, width 2
    table = rounded(g, NUM_BUCKETS)  # this head's column of the (buckets, H) bias table
    pos = torch.arange(3)
    relative = pos[None, :] - pos[:, None]  # (query, key): key position - query position
    buckets = relative_position_bucket(relative, True, NUM_BUCKETS, MAX_DISTANCE)  # encoder: bidirectional
    bias = table[buckets]  # (3, 3)
    scores = q @ k.T  # no 1/sqrt(Dh): T5 does not scale
    total = scores + bias
    probs = total.softmax(dim=-1)
    out = probs @ v
    # the same head through minit5's attention function: (B, H, T, Dh) tensors, bias (1, H, T, T)
    ours = attention(q[None, None], k[None, None], v[None, None], bias[None, None], 0.0, use_sdpa=False)[0, 0]
    # The two orders of float32 arithmetic agree to within rounding, whose last digits depend on the CPU's kernels
    # (0 on one machine, 3e-08 on another): the block states the bound it checks, not the difference itself.
    assert (ours - out).abs().max() < AGREE, (ours, out)
    t = {"tokens": "词元", "q": "查询 q（每行一个词元）", "k": "键 k", "v": "值 v",
         "rel": "相对位置 = 键位置 − 查询位置", "buckets": "桶编号（编码器）", "table": "该头的偏置表（前 8 个桶，及桶 17、18）",
         "bias": "位置偏置 = 表[桶]", "scores": "分数 q·kᵀ（不除以 √2）", "total": "分数 + 偏置",
         "probs": "softmax（每行和为 1）", "out": "输出 = 概率 · v", "check": "与 minit5/model.py 的 attention 函数一致：每个数相差都小于"}
    e = {"tokens": "tokens", "q": "q (one row per token)", "k": "k", "v": "v",
         "rel": "relative position = key position - query position", "buckets": "bucket ids (encoder)",
         "table": "this head's bias table (buckets 0-7, and 17, 18)", "bias": "position bias = table[bucket]",
         "scores": "scores q·kᵀ (not divided by √2)", "total": "scores + bias", "probs": "softmax (each row sums to 1)",
         "out": "output = probabilities · v", "check": "the same as minit5/model.py's attention function: every entry within"}
    L = t if zh else e
    c = "：" if zh else ": "  # the colon after a label
    lines = [f"{L['tokens']}{c}{TOKENS}"]
    for key, value in (("q", q), ("k", k), ("v", v)):
        lines += [f"{L[key]}{c.strip()}", fmt(value)]
    lines += [f"{L['rel']}{c.strip()}", "\n".join("    " + str(row) for row in relative.tolist()),
              f"{L['buckets']}{c.strip()}", "\n".join("    " + str(row) for row in buckets.tolist()),
              f"{L['table']}{c}{fmt(table[:8])} ... 17: {table[17]:.2f}, 18: {table[18]:.2f}",
              f"{L['bias']}{c.strip()}", fmt(bias),
              f"{L['scores']}{c.strip()}", fmt(scores),
              f"{L['total']}{c.strip()}", fmt(total),
              f"{L['probs']}{c.strip()}", fmt(probs),
              f"{L['out']}{c.strip()}", fmt(out),
              f"{L['check']} {AGREE_TEXT}"]
    return lines


def bucket_by_hand(distance: int, bidirectional: bool, zh: bool = False) -> list[str]:
    """relative_position_bucket for a key `distance` positions BEFORE the query, one line per step."""
    num_buckets = NUM_BUCKETS // 2 if bidirectional else NUM_BUCKETS  # encoder: half per direction
    max_exact = num_buckets // 2
    ratio = math.log(distance / max_exact) / math.log(MAX_DISTANCE / max_exact)
    scaled = ratio * (num_buckets - max_exact)
    bucket = min(max_exact + int(scaled), num_buckets - 1)
    real = relative_position_bucket(torch.tensor(-distance), bidirectional, NUM_BUCKETS, MAX_DISTANCE).item()
    assert bucket == real, (bucket, real)
    stack = ("encoder" if bidirectional else "decoder") if not zh else ("编码器" if bidirectional else "解码器")
    if zh:
        head = f"{stack}，键在查询之前 {distance} 个位置（相对位置 −{distance}）："
        lines = [head,
                 f"    可用的桶 num_buckets = {num_buckets}" + ("（32 个桶，一半给之前的键）" if bidirectional else "（因果：32 个桶全给过去）"),
                 f"    max_exact = num_buckets // 2 = {max_exact}：距离 0–{max_exact - 1} 每个距离一个桶；{distance} ≥ {max_exact}，走对数分支",
                 f"    log({distance}/{max_exact}) / log({MAX_DISTANCE}/{max_exact}) = {math.log(distance / max_exact):.4f} / "
                 f"{math.log(MAX_DISTANCE / max_exact):.4f} = {ratio:.4f}",
                 f"    x (num_buckets − max_exact) = {ratio:.4f} x {num_buckets - max_exact} = {scaled:.4f}，向下取整 → {int(scaled)}",
                 f"    桶 = {max_exact} + {int(scaled)} = {bucket}（relative_position_bucket 给出 {real}）"]
    else:
        head = f"{stack}, key {distance} positions before the query (relative position -{distance}):"
        lines = [head,
                 f"    num_buckets = {num_buckets}" + (" (32 buckets, half for keys before)" if bidirectional
                                                     else " (causal: all 32 for the past)"),
                 f"    max_exact = num_buckets // 2 = {max_exact}: distances 0-{max_exact - 1} get a bucket each; "
                 f"{distance} >= {max_exact}, so the log branch",
                 f"    log({distance}/{max_exact}) / log({MAX_DISTANCE}/{max_exact}) = {math.log(distance / max_exact):.4f} / "
                 f"{math.log(MAX_DISTANCE / max_exact):.4f} = {ratio:.4f}",
                 f"    x (num_buckets - max_exact) = {ratio:.4f} x {num_buckets - max_exact} = {scaled:.4f}, "
                 f"truncated -> {int(scaled)}",
                 f"    bucket = {max_exact} + {int(scaled)} = {bucket}   (relative_position_bucket gives {real})"]
    return lines


def markdown_block(zh: bool = False) -> str:
    lines = attention_example(zh) + [""] + bucket_by_hand(40, True, zh) + bucket_by_hand(100, False, zh)
    return "```text\n" + "\n".join(lines) + "\n```"


def markdown_block_zh() -> str:
    return markdown_block(zh=True)


if __name__ == "__main__":
    print(markdown_block(zh="--zh" in sys.argv[1:]))
