"""Does --compile speed up training on CPU? Times the demo's training steps with and without torch.compile.

    python docs/scripts/compile_speed.py [--steps 40] [--batch-size 64]

Each setting trains the demo model (task demo, the tiny 1.3M-parameter config) in a fresh process for --steps
steps and reports the median time of the steps after the first 5 (the compiled run compiles during its first
steps: that time is reported separately). Run it on a quiet machine: other work on the CPU distorts the timings.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

ONE_RUN = textwrap.dedent("""
    import json, statistics, sys, time
    sys.path.insert(0, {root!r})
    import torch
    from minit5.trainer import TrainConfig, Trainer
    trainer = Trainer(TrainConfig(out={out!r}, steps={steps}, batch_size={batch}, compile={compile}),
                      log=lambda m: None)
    times = []
    for _ in range({steps}):
        start = time.perf_counter()
        trainer.train_step()
        times.append(time.perf_counter() - start)
    print(json.dumps(dict(first=sum(times[:5]), median=statistics.median(times[5:]), threads=torch.get_num_threads())))
""")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=64)
    args = p.parse_args()
    if args.steps < 6:
        sys.exit("error: --steps must be at least 6 (the first 5 steps are timed apart)")
    import torch
    print(f"torch {torch.__version__}, {args.steps} steps of {args.batch_size} demo examples, CPU")
    print("| | median step | first 5 steps (compiling, if compiled) |")
    print("|---|---:|---:|")
    results = {}
    for compiled in (False, True):
        with tempfile.TemporaryDirectory() as out:
            code = ONE_RUN.format(root=str(ROOT), out=str(Path(out) / "run"), steps=args.steps,
                                  batch=args.batch_size, compile=compiled)
            run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
            if run.returncode != 0:
                sys.exit(f"error: the {'compiled' if compiled else 'eager'} run failed: "
                         f"{(run.stderr.strip().splitlines() or ['?'])[-1]}")
            results[compiled] = json.loads(run.stdout.strip().splitlines()[-1])
        r = results[compiled]
        print(f"| {'--compile' if compiled else 'eager'} | {r['median'] * 1000:.0f} ms | {r['first']:.1f} s |")
    print(f"speed-up of a step: {results[False]['median'] / results[True]['median']:.2f}x "
          f"({results[True]['threads']} threads)")


if __name__ == "__main__":
    main()
