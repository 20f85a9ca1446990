"""The memory bound of batch-1 decoding: bytes a decode step must read, and how fast this machine reads them.

Generating one token multiplies one row by every decoder weight and the output layer, so each step streams all of
them from memory once; with one row there is almost no arithmetic per byte read, and the machine's read
bandwidth, not its floating-point speed, sets the limit:

    steps/s  <=  read bandwidth (bytes/s)  /  bytes streamed per step

bench/run.py reports each batch-1 decode row as a fraction of this bound (`of_bandwidth`), beside the bound of
torch's own kernels for the same products (`of_bound`: the products alone, timed). The first is a property of
the hardware; the second of the kernels, and a kernel can be slower than the memory (docs/performance.md).
Caches can hold part of a small model between steps (the int8 flan-T5-small, 49 MiB, fits in some CPUs' L3), so a
small model can beat this bound; for flan-T5-small in fp32 (147 MiB) and larger it holds.

    python bench/bandwidth.py              this machine's read bandwidth and flan-T5-small's bound (fp32, int8)
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from minit5.quant import Int8Weight

READ_BYTES = 512 * 2**20  # larger than any cache, so the sum reads from memory


def read_bandwidth(threads: int | None = None, reps: int = 7) -> float:
    """Bytes per second torch reads from memory with `threads` threads: the faster of two ways of streaming
    READ_BYTES, each the median of reps after a warm-up. A sum does one addition per 4 bytes, and one row times a
    column-major matrix (what a batch-1 decode step does) two operations per 4 bytes; both are far below what the
    cores can compute, so memory sets their speed. Which of the two reads faster depends on the CPU (a 2-core
    Intel Xeon: 22 GiB/s for the sum, 28 for the product; the AMD EPYC of docs/performance.md: 18.3 and 16.5), and
    the bound must be one no kernel beats, so the faster counts."""
    if threads is not None:
        torch.set_num_threads(threads)
    x = torch.ones(READ_BYTES // 4)
    matrix = x.view(-1, 1024).t()  # (1024, rows): the same bytes as a column-major weight of `rows` outputs
    row = torch.ones(1, 1024)

    def median_seconds(read):
        read()  # warm-up: pages mapped, threads started
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            read()
            times.append(time.perf_counter() - start)
        return statistics.median(times)
    return READ_BYTES / min(median_seconds(x.sum), median_seconds(lambda: row @ matrix))


def step_bytes(weights) -> int:
    """Bytes one decode step reads: every weight it multiplies by (fast.FastWeights.per_step: all decoder
    matrices but cross-attention k|v, which run once per call, and the output layer); int8 weights count their
    integer bytes and their scales."""
    total = 0
    for fused in weights.per_step():
        w = fused.weight
        tensors = (w.q, w.scale) if isinstance(w, Int8Weight) else (w,)
        total += sum(t.numel() * t.element_size() for t in tensors)
    return total


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    from minit5 import T5, T5Config
    from minit5.fast import prepare
    from minit5.quant import quantize
    bandwidth = read_bandwidth(args.threads)
    print(f"read bandwidth, {args.threads} threads: {bandwidth / 2**30:.1f} GiB/s")
    model = T5(T5Config.flan_t5("small")).eval()
    for name in ("float32", "int8"):
        if name == "int8":
            quantize(model)
        n = step_bytes(prepare(model))
        print(f"flan-T5-small, {name}: {n / 2**20:.1f} MiB a step, at most {bandwidth / n:.0f} steps/s")


if __name__ == "__main__":
    main()
