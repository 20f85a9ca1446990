"""Memory while generating: how much the fast decoder step's copies of the weights cost, on flan-T5-base's shape.

    python docs/scripts/generate_memory.py                 flan-T5-base shape, random weights, fp32
    python docs/scripts/generate_memory.py --size small    another size

minit5/fast.py decodes with fused copies of the decoder weights and the output layer (the model's parameters are
never touched); docs/performance.md reports what they cost. Each row runs in a fresh process: build the model,
reset the process's peak resident memory (Linux: /proc/self/clear_refs), generate, and read the peak (VmHWM). The
model's own memory is its parameters; "extra" is the peak during generate above the model.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import memory_status  # noqa: E402  (also puts this clone's minit5 first on the path)

from minit5 import T5, T5Config  # noqa: E402
from minit5.config import FLAN_T5_SIZES  # noqa: E402

MIB = 2**20
CASES = {  # name: generate's arguments
    "readable step, greedy, 1 row": dict(step="readable"),
    "fast step, greedy, 1 row": dict(step="fast"),
    "fast step, beam search, 4 beams": dict(step="fast", num_beams=4),
}


def measure(size: str, case: str) -> dict:
    """Run in a child process: one generate call, and the memory it took."""
    torch.manual_seed(0)
    model = T5(T5Config.flan_t5(size)).eval()
    ids = torch.randint(5, 1000, (1, 48))
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    decoder = sum(p.numel() * p.element_size() for p in [*model.decoder.parameters(), *model.lm_head.parameters()])
    open("/proc/self/clear_refs", "w").write("5")  # the peak starts again from what is resident now
    before = memory_status("VmRSS")
    model.generate(ids, max_new_tokens=32, min_new_tokens=32, **CASES[case])
    return dict(weights=weights, decoder_and_head=decoder, before=before, peak=memory_status("VmHWM"),
                after=memory_status("VmRSS"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="base", choices=sorted(FLAN_T5_SIZES))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.size, args.child)))
        return
    print(f"flan-T5-{args.size} shape, fp32, random weights; a 48-token prompt, 32 new tokens")
    print(f"{'':34s} {'peak above the model':>21s} {'kept after':>11s}")
    for case in CASES:
        out = subprocess.run([sys.executable, __file__, "--size", args.size, "--child", case],
                             capture_output=True, text=True, check=True)
        m = json.loads(out.stdout)
        print(f"{case:34s} {(m['peak'] - m['before']) / MIB:17,.0f} MiB {(m['after'] - m['before']) / MIB:7,.0f} MiB")
    print(f"(the model's weights: {m['weights'] / MIB:,.0f} MiB, of which the decoder and output layer "
          f"{m['decoder_and_head'] / MIB:,.0f} MiB)")


if __name__ == "__main__":
    main()
