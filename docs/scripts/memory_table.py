"""Parameter counts and weight memory of the flan-T5 sizes, counted by building minit5 on the meta device.

    python docs/scripts/memory_table.py                 prints the markdown tables used in docs/weights.md
    python docs/scripts/memory_table.py --measure-load  also measures the peak memory of loading a checkpoint
    python docs/scripts/memory_table.py --zh            the tables in Chinese, for docs/zh/weights.md

Weights only: activations, the KV cache while generating, and (for training) gradients and optimizer state
come on top. GiB = 2^30 bytes (the unit used for binary sizes throughout the docs).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap

import torch

from minit5 import T5, T5Config, checkpoint
from minit5.config import FLAN_T5_SIZES

skip_random_init = checkpoint.skip_random_init
GIB = 2**30


def parameter_counts(config: T5Config) -> tuple[int, int]:
    """(all parameters, those in the FFN output matrices ffn.down, which float16 loading keeps in fp32)."""
    with torch.device("meta"), skip_random_init():  # shapes only: no memory, no random numbers
        model = T5(config)
    down = sum(p.numel() for name, p in model.named_parameters() if name.endswith("ffn.down.weight"))
    return model.num_parameters(), down


def markdown_table(zh: bool = False) -> str:
    if zh:
        lines = ["| 模型 | 参数量 | fp32（每个 4 字节） | bf16（每个 2 字节） | fp16（`ffn.down` 保持 fp32） |",
                 "|---|---:|---:|---:|---:|"]
    else:
        lines = ["| model | parameters | fp32 (4 bytes each) | bf16 (2 bytes each) | fp16 (`ffn.down` in fp32) |",
                 "|---|---:|---:|---:|---:|"]
    for size in FLAN_T5_SIZES:
        n, down = parameter_counts(T5Config.flan_t5(size))
        lines.append(f"| flan-t5-{size} | {n:,} | {4 * n / GIB:.2f} GiB | {2 * n / GIB:.2f} GiB "
                     f"| {(2 * n + 2 * down) / GIB:.2f} GiB |")
    lines.append("")
    lines.append("| 数据类型 | 最大有限值 | 1.0 处的最小步长（eps） |" if zh
                 else "| dtype | largest finite value | smallest step at 1.0 (eps) |")
    lines.append("|---|---:|---:|")
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        info = torch.finfo(dtype)
        lines.append(f"| {str(dtype).removeprefix('torch.')} | {info.max:.6g} | {info.eps:.3g} |")
    return "\n".join(lines)


def markdown_table_zh() -> str:
    return markdown_table(zh=True)


LOAD_SCRIPT = textwrap.dedent("""
    import sys, torch
    from minit5 import T5
    def status_mib(field):  # VmRSS = resident now, VmHWM = peak resident, in this process only
        line = next(l for l in open('/proc/self/status') if l.startswith(field + ':'))
        return int(line.split()[1]) / 1024
    before = status_mib('VmRSS')
    model = T5.from_pretrained(sys.argv[1], dtype=getattr(torch, sys.argv[2]))
    print(status_mib('VmHWM') - before)
""")


def measure_load() -> str:
    """Save a random flan-T5-small-shaped fp32 checkpoint, load it in a fresh process, report peak RSS growth."""
    lines = ["| load as | checkpoint file | peak memory growth while loading | ratio |", "|---|---:|---:|---:|"]
    with tempfile.TemporaryDirectory() as folder:
        torch.manual_seed(0)
        T5(T5Config.flan_t5("small")).save_pretrained(folder)
        size_mb = os.path.getsize(os.path.join(folder, "model.safetensors")) / 2**20
        for dtype in ("float32", "bfloat16"):
            out = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, folder, dtype], capture_output=True, text=True,
                                 check=True)
            grown = float(out.stdout.strip().splitlines()[-1])
            lines.append(f"| {dtype} | {size_mb:.0f} MiB | {grown:.0f} MiB | {grown / size_mb:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--measure-load", action="store_true", help="also measure loading a flan-t5-small-shaped file")
    p.add_argument("--zh", action="store_true", help="the tables in Chinese, for docs/zh/weights.md")
    args = p.parse_args()
    print(markdown_table(zh=args.zh))
    if args.measure_load:
        if not sys.platform.startswith("linux"):
            sys.exit("--measure-load reads /proc/self/status, which only Linux has")
        print()
        print(measure_load())
