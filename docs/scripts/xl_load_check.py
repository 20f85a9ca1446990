"""Build a flan-T5-XL-sized checkpoint (random weights, 10.6 GiB fp32 on disk) and load it, as docs/weights.md reports.

    python docs/scripts/xl_load_check.py [--folder /tmp/xl]     needs ~11 GiB free disk and ~11 GiB memory

The checkpoint stays in --folder afterwards (so a second run skips building it): delete it to free the disk.

Each load runs in a fresh process; it prints the load time, the growth of peak resident memory while loading,
and the peak after one short forward pass (which touches every weight).
"""

import argparse
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

LOAD = textwrap.dedent("""
    import sys, time, torch
    sys.path.insert(0, {root!r})
    from minit5 import T5
    def gib(field):
        line = next(l for l in open('/proc/self/status') if l.startswith(field + ':'))
        return int(line.split()[1]) / 2 ** 20
    before = gib('VmRSS'); start = time.perf_counter()
    model = T5.from_pretrained({folder!r}, dtype=getattr(torch, {dtype!r}))
    seconds, loading = time.perf_counter() - start, gib('VmHWM') - before
    ids = torch.randint(3, 32000, (1, 8))
    with torch.no_grad():
        logits, _ = model(ids, decoder_input_ids=ids[:, :2])
    assert torch.isfinite(logits).all()
    print(f"| {dtype} | {{seconds:.1f}} s | {{loading:.2f}} GiB | {{gib('VmHWM') - before:.2f}} GiB |")
""")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--folder", default="/tmp/xl")
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    import torch

    from minit5 import T5, T5Config
    from minit5.checkpoint import skip_random_init
    folder = Path(args.folder)
    if not (folder / "config.json").exists():
        with skip_random_init():
            model = T5(T5Config.flan_t5("xl"))
        with torch.no_grad():
            for param in model.parameters():
                param.normal_(0, 0.02)
        model.save_pretrained(folder)
        del model
    size = sum(f.stat().st_size for f in folder.glob("*.safetensors")) / 2 ** 30
    print(f"flan-T5-XL-sized checkpoint: {size:.1f} GiB in {folder} (left there for the next run; "
          f"delete the folder to free the disk)")
    print("| load as | load time | peak memory growth while loading | peak after a forward pass |")
    print("|---|---:|---:|---:|")
    for dtype in ("float32", "bfloat16"):
        code = LOAD.format(root=str(ROOT), folder=str(folder), dtype=dtype)
        print(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip())


if __name__ == "__main__":
    main()
