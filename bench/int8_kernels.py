"""Which CPU int8 kernel decodes fastest? Times one matrix-vector product per decode-step shape of flan-T5-small
(batch 1 and a few rows) with each candidate torch offers, against fp32 F.linear on the same shape.

    python bench/int8_kernels.py [--threads 2] [--rows 1 4 16] [--reps 200]

Candidates (all keep weights in int8 with one fp32 scale per output channel):
  weight-only   torch.ops.aten._weight_int8pack_mm: fp32 activations, int8 weights widened inside the kernel
  dynamic       torch.ops.quantized.linear_dynamic (fbgemm): activations quantized to uint8 on the fly
  int8 x int8   torch._int_mm: activations quantized per row by hand, int32 accumulation, rescaled
The fastest of --reps calls (on a busy machine the median catches other processes' time slices; the minimum is
what the kernel itself needs). Absolute times vary between machines; the ratios between rows of one run are the point.
"""

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import positive_int  # noqa: E402  (bench/run.py's argument check)

# (out, in) of the decoder step's matrices in flan-T5-small: fused q|k|v, o, gate|up, down, lm_head
SHAPES = {"qkv": (1152, 512), "o": (512, 384), "gate_up": (2048, 512), "down": (512, 1024), "lm_head": (32128, 512)}


def best_us(fn, reps):
    for _ in range(max(3, reps // 10)):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1e6


def candidates(w, x):
    """name -> zero-argument function computing x @ wᵀ (approximately) from int8 weights."""
    scale = w.abs().amax(dim=1) / 127  # (out,)
    q = torch.round(w / scale[:, None]).to(torch.int8)  # (out, in)
    fns = {"fp32 F.linear": lambda: F.linear(x, w),
           "fp32 F.linear column-major": (lambda wc: lambda: F.linear(x, wc))(w.t().contiguous().t())}
    fns["weight-only _weight_int8pack_mm"] = lambda: torch.ops.aten._weight_int8pack_mm(x, q, scale)
    try:
        packed = torch.ops.quantized.linear_prepack(
            torch.quantize_per_channel(w, scale.double(), torch.zeros(len(scale), dtype=torch.long), 0, torch.qint8),
            None)
        fns["dynamic fbgemm linear_dynamic"] = lambda: torch.ops.quantized.linear_dynamic(x, packed, True)
    except RuntimeError as e:
        print("dynamic quantization unavailable:", e)
    qt = q.t().contiguous()  # (in, out) for _int_mm

    def int_mm():
        xs = x.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / 127  # (rows, 1)
        xq = torch.round(x / xs).to(torch.int8)
        rows = xq.shape[0]
        if rows <= 16:  # _int_mm wants more than 16 rows: pad
            xq = torch.cat([xq, xq.new_zeros(17 - rows, xq.shape[1])])
        return torch._int_mm(xq, qt)[:rows].float() * xs * scale
    fns["int8 x int8 _int_mm"] = int_mm
    return fns, q, scale


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=positive_int, default=2)
    p.add_argument("--rows", type=positive_int, nargs="+", default=[1, 4, 16])
    p.add_argument("--reps", type=positive_int, default=200)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {args.threads} threads, quantized engine {torch.backends.quantized.engine}")
    for rows in args.rows:
        totals = {}
        for name, (out, inp) in SHAPES.items():
            w = torch.randn(out, inp) * inp ** -0.5
            x = torch.randn(rows, inp)
            fns, q, scale = candidates(w, x)
            exact = x @ (q.float() * scale[:, None]).t()
            for label, fn in fns.items():
                try:
                    err = ((fn() - exact).norm() / exact.norm()).item()
                    t = best_us(fn, args.reps)
                except RuntimeError as e:
                    print(f"  {label}: failed ({str(e).splitlines()[0][:80]})")
                    continue
                totals.setdefault(label, 0.0)
                totals[label] += t
                print(f"rows {rows:>2} {name:<8} {out:>5}x{inp:<5} {label:<34} {t:9.1f} us  "
                      f"rel. err vs dequantized {err:.1e}")
        print(f"rows {rows:>2} one step's products (each shape once):")
        for label, t in sorted(totals.items(), key=lambda kv: kv[1]):
            print(f"    {label:<34} {t:9.1f} us")


if __name__ == "__main__":
    main()
