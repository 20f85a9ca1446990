"""Where a greedy decoding call's time goes, fast.py's step against compiled.py's, per generated token.

    python docs/scripts/decode_profile.py [--dtype float32] [--reps 7]

On a random flan-T5-small-shaped model (minit5's initialisation, seed 0), the benchmark's case: one 24-token
prompt, 64 tokens forced (EOS blocked). Each line is the median of --reps timings, taken in turn (so a slow spell
of the machine hits all alike), in milliseconds per generated token:
- the matrix products of one step alone (the weight-streaming bound of bench/run.py),
- the encoder (once per call, shared out over the 64 tokens), and a decoding state's set-up,
- 64 steps of each step, without the generate loop,
- the compiled step with every matrix product replaced by a free stand-in: what is left besides the products,
- a whole model.generate call, each way.
Run it on a quiet machine: other work on the CPU distorts the timings.
"""

import argparse
import statistics
import sys
import time
import types
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import minit5.compiled as compiled  # noqa: E402
from minit5 import T5, T5Config  # noqa: E402
from minit5.fast import FastDecodeState, prepare  # noqa: E402

TOKENS, PROMPT = 64, 24


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--reps", type=int, default=7)
    args = p.parse_args()
    if args.reps < 1:
        p.error("--reps must be at least 1")
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    model = T5(T5Config.flan_t5("small")).eval().to(dtype).set_attention("sdpa")
    ids = torch.randint(3, 32000, (1, PROMPT))
    mask = torch.ones_like(ids)
    forced = dict(max_new_tokens=TOKENS, min_new_tokens=TOKENS)
    start = time.perf_counter()
    model.generate(ids, mask, step="compiled", **forced)  # compiles (or loads torch's on-disk cache)
    first_call = time.perf_counter() - start

    weights = prepare(model)
    products = [fused.weight for fused in weights.per_step()]
    inputs = {w.shape[1]: torch.randn(1, 1, w.shape[1], dtype=dtype) for w in products}
    encoded = model.encode(ids, mask)
    token = torch.zeros(1, 1, dtype=torch.long)

    def steps(make_state):
        state = make_state()
        for _ in range(TOKENS):
            state.step(token)

    # The compiled step with free stand-ins for the products: zeros of the product's shape (plus a column of x, so
    # that nothing is optimised away). A program of its own, compiled once here.
    no_products = types.SimpleNamespace(**vars(F))
    no_products.linear = lambda x, w: x.new_zeros(*x.shape[:-1], w.shape[0]) + x[..., :1]
    floor_step = torch.compile(_with_functional(no_products), fullgraph=True, dynamic=False,
                               options={"cpp_wrapper": True})

    def floor():
        state = compiled.CompiledDecodeState(model, encoded, mask, TOKENS, compile=False)
        state.run = floor_step
        for _ in range(TOKENS):
            state.step(token)

    timed = {
        "matrix products of a step (the bound)": lambda: [[F.linear(inputs[w.shape[1]], w) for w in products]
                                                         for _ in range(TOKENS)],
        "encoder, once per call": lambda: model.encode(ids, mask),
        "set-up of the compiled state": lambda: compiled.CompiledDecodeState(model, encoded, mask, TOKENS),
        "fast.py step (64 steps)": lambda: steps(lambda: FastDecodeState(model, encoded, mask, TOKENS)),
        "compiled step (64 steps)": lambda: steps(lambda: compiled.CompiledDecodeState(model, encoded, mask, TOKENS)),
        "compiled step without its products": floor,
        "model.generate, fast.py": lambda: model.generate(ids, mask, **forced),
        "model.generate, step=compiled": lambda: model.generate(ids, mask, step="compiled", **forced),
    }
    times = {name: [] for name in timed}
    with torch.no_grad():
        for fn in timed.values():  # warm-up (and the floor program's compile)
            fn()
        for _ in range(args.reps):
            for name, fn in timed.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    print(f"flan-T5-small shape, random weights, {args.dtype}, {torch.get_num_threads()} threads, torch "
          f"{torch.__version__}; greedy, {PROMPT}-token prompt, {TOKENS} tokens; median of {args.reps}")
    print(f"first compiled call (compiling, or loading torch's cache): {first_call:.1f} s")
    print("| | ms per generated token |")
    print("|---|---:|")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values) / TOKENS * 1000:.2f} |")
    bound = statistics.median(times["matrix products of a step (the bound)"])
    for name in ("model.generate, fast.py", "model.generate, step=compiled", "compiled step (64 steps)"):
        print(f"{name}: {bound / statistics.median(times[name]):.0%} of the bound")


def _with_functional(functional):
    """compiled.decode_step with its module's F swapped for `functional`, as a new function (the module is left
    as it is). A copy of the code object too: torch.compile keeps its programs per code object, and would
    otherwise run the real step's."""
    namespace = dict(vars(compiled), F=functional)
    code = compiled.decode_step.__code__.replace(co_name="decode_step_without_products")
    return types.FunctionType(code, namespace, "decode_step_without_products")


if __name__ == "__main__":
    main()
