"""The context window of T5: what the position buckets do with long inputs, and what long inputs cost.

    python docs/scripts/context_window.py --table [--zh]    the bucket table of docs/context-window.md (from the code)
    python docs/scripts/context_window.py                   measures encoding 128 ... 4096 tokens with the demo model
    python docs/scripts/context_window.py --model DIR --lengths 128 512 2048
    python docs/scripts/context_window.py --random          a random tiny model (the cost does not need training)

The table comes from minit5/model.py relative_position_bucket with T5's settings (32 buckets, max_distance 128).
The measurement runs each length in a fresh Python process, on the CPU, in fp32, with torch's threads as set
(--threads, default 2): the median time of 3 calls of T5.encode on one prompt of that many tokens (after one
warm-up call), and the growth of peak resident memory (VmHWM in /proc/self/status, Linux) during those calls.
Timings depend on the machine and on what else runs on it: measure on a quiet machine.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_MODEL, ROOT  # noqa: E402

sys.path.insert(0, str(ROOT))
from minit5.model import relative_position_bucket  # noqa: E402

NUM_BUCKETS, MAX_DISTANCE = 32, 128
LENGTHS = (128, 256, 512, 1024, 2048, 4096)


def first_distance_of_last_bucket(bidirectional: bool) -> int:
    """The smallest distance (key before the query) that lands in the last bucket: every farther one looks alike."""
    distances = torch.arange(1, 4 * MAX_DISTANCE)
    buckets = relative_position_bucket(-distances, bidirectional, NUM_BUCKETS, MAX_DISTANCE)
    last = (NUM_BUCKETS // 2 if bidirectional else NUM_BUCKETS) - 1
    return int(distances[buckets == last].min())


def share_in_last_bucket(length: int, bidirectional: bool) -> float:
    """Of the length × length (query, key) pairs of self-attention (decoder: only keys at or before the query),
    the share whose distance falls in the last bucket of its direction. At distance d there are length - d pairs
    per direction."""
    distances = torch.arange(length)
    buckets = relative_position_bucket(-distances, bidirectional, NUM_BUCKETS, MAX_DISTANCE)
    last = (NUM_BUCKETS // 2 if bidirectional else NUM_BUCKETS) - 1  # the last bucket for keys before the query
    far = (buckets == last) & (distances > 0)
    pairs_per_distance = length - distances  # per direction
    if bidirectional:  # the same count of keys after the query, whose last bucket starts at the same distance
        return float(2 * pairs_per_distance[far].sum()) / length ** 2
    return float(pairs_per_distance[far].sum()) / (length * (length + 1) / 2)


def markdown_table(zh: bool = False) -> str:
    enc, dec = first_distance_of_last_bucket(True), first_distance_of_last_bucket(False)
    if zh:
        lines = [f"最后一个桶从距离 {enc} 开始（编码器，每个方向 16 个桶），解码器从距离 {dec} 开始（32 个桶只给过去）。",
                 "", "| 输入长度（词元） | 编码器：落在最后一个桶的（查询, 键）对 | 解码器：同上（只算可见的键） |",
                 "|---|---|---|"]
    else:
        lines = [f"The last bucket starts at distance {enc} in the encoder (16 buckets per direction) and at "
                 f"{dec} in the decoder (all 32 buckets for the past).", "",
                 "| length (tokens) | encoder: (query, key) pairs in the last bucket | decoder: the same "
                 "(visible keys only) |", "|---|---|---|"]
    for length in LENGTHS:
        lines.append(f"| {length} | {share_in_last_bucket(length, True):.1%} | "
                     f"{share_in_last_bucket(length, False):.1%} |")
    return "\n".join(lines)


def markdown_table_zh() -> str:
    return markdown_table(zh=True)


# ------------------------------------------------------------------------------------------------ measuring
MEASURE = textwrap.dedent("""
    import statistics, sys, time, torch
    sys.path.insert(0, {root!r}); sys.path.insert(0, {scripts!r})
    torch.set_num_threads({threads})
    from common import load, memory_status
    def mib(field):
        return memory_status(field) / 2 ** 20
    model, tokenizer, _ = load({model!r}, {random!r})
    text = "Ganymede is the largest moon of Jupiter. "
    ids = tokenizer.encode(text * (1 + {length} // len(tokenizer.encode(text))), max_length={length})
    input_ids = torch.tensor([ids])  # (1, S)
    with torch.no_grad():
        model.encode(input_ids[:, :16])  # warm-up on a short input, so the peak below belongs to this length
        before = mib('VmHWM')
        times = []
        for _ in range(3):
            start = time.perf_counter()
            model.encode(input_ids)
            times.append(time.perf_counter() - start)
    config = model.config
    scores = config.num_heads * {length} ** 2 * 4 / 2 ** 20  # one layer's (H, S, S) fp32 scores, MiB
    grown = mib('VmHWM') - before
    def size(x):
        return f"{{x:.1f}} MiB" if x < 10 else f"{{x:.0f}} MiB"
    print(f"| {length} | {{statistics.median(times) * 1000:.1f}} ms | {{size(grown)}} | {{size(scores)}} |")
""")


def measure(model: str, use_random: bool, lengths, threads: int) -> None:
    if not use_random and not Path(model).exists():
        sys.exit(f"no model folder at {model}: make it with `python train.py`, pass --model DIR, or use --random")
    print(f"model: {'a random tiny model' if use_random else model}; torch {torch.__version__}, {threads} thread(s)")
    print("| input tokens | time to encode (median of 3) | peak memory growth | one layer's attention scores |")
    print("|---:|---:|---:|---:|")
    for length in lengths:
        code = MEASURE.format(root=str(ROOT), scripts=str(Path(__file__).resolve().parent), threads=threads,
                              model=model, random=use_random, length=length)
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit(f"measuring {length} tokens failed:\n{result.stderr.strip()}")
        print(result.stdout.strip(), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", action="store_true", help="print the bucket table instead of measuring")
    p.add_argument("--zh", action="store_true", help="with --table: in Chinese (docs/zh/context-window.md)")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model folder or hub id (default: {DEFAULT_MODEL})")
    p.add_argument("--random", action="store_true", help="use a random tiny model instead of --model")
    p.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS))
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    if args.table:
        print(markdown_table(zh=args.zh))
    else:
        measure(args.model, args.random, args.lengths, args.threads)


if __name__ == "__main__":
    main()
