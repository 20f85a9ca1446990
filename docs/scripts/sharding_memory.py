"""Memory per process of full fine-tuning under DDP and under FSDP (docs/training.md, section 5).

    python docs/scripts/sharding_memory.py                the computed table (bytes a parameter), as in the docs
    python docs/scripts/sharding_memory.py --zh           the same in Chinese, for docs/zh/training.md
    python docs/scripts/sharding_memory.py --measure      runs the trainer under torchrun and measures each
        [--sizes small base] [--processes 1 2 4] [--skip base:ddp:4]   process's peak memory (minutes; GiBs)
    python docs/scripts/sharding_memory.py --timing       the step time of DDP and FSDP (on a quiet machine only)

Computed: AdamW in fp32 keeps 16 bytes a trained parameter (4 weight, 4 gradient, 8 for the two moments). DDP
holds all 16 in every process; FSDP holds 16/N in each, plus what it gathers whole for a moment: each block's
weights while it computes (and the next one, fetched ahead) and, in backward, its gradient before it is cut
into shards; the root's weights (the embedding and lm_head, 2 x 32128 x d_model) stay gathered from the start
of the forward to the end of the backward, with their gradient. Activations come on top in both (they depend on
the batch and the lengths, not on the sharding). Parameter counts come from building each shape on the "meta"
device, so they cannot drift from minit5/model.py. GiB = 2^30 bytes.

Measured (--measure): the script starts itself as a worker under `torchrun --standalone --nproc_per_node N`, and
each worker runs minit5's own trainer (`Trainer`, --fsdp or not) for 3 steps of full fine-tuning, on a fresh model of each flan-T5 shape (random
weights, the 32128-id vocabulary), 8 examples per step of 128 input and 32 target tokens, fp32, and each process
reports its peak resident memory (getrusage's ru_maxrss) and the bytes of its weights, gradients and optimizer
state counted tensor by tensor (the local shards under FSDP) at the last optimizer step.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from minit5 import T5, T5Config  # noqa: E402
from minit5.checkpoint import skip_random_init  # noqa: E402

GIB = 2**30
SIZES = ("small", "base", "large", "xl")
PROCESSES = (2, 4, 8)
BYTES = dict(weight=4, gradient=4, adamw=8)  # fp32 AdamW: 16 bytes a trained parameter


# --------------------------------------------------------------------------------------------------
# Computed
# --------------------------------------------------------------------------------------------------
def counts(size: str) -> dict:
    """Parameters of one flan-T5 shape: all, the root unit's (embedding, lm_head, final norms), the largest block."""
    with torch.device("meta"), skip_random_init():
        model = T5(T5Config.flan_t5(size))
    in_blocks = {id(p) for block in [*model.encoder.blocks, *model.decoder.blocks] for p in block.parameters()}
    root = sum(p.numel() for p in model.parameters() if id(p) not in in_blocks)
    block = max(sum(p.numel() for p in b.parameters()) for b in [*model.encoder.blocks, *model.decoder.blocks])
    return dict(all=model.num_parameters(), root=root, block=block)


def computed(size: str, processes: int) -> dict:
    """GiB per process: the training state (weights + gradients + AdamW), and FSDP's gathered tensors at most."""
    n = counts(size)
    state = sum(BYTES.values()) * n["all"]
    # root weights and gradient, gathered whole; a block's weights, the next block's (fetched ahead), a gradient
    gathered = (BYTES["weight"] + BYTES["gradient"]) * n["root"] + 3 * 4 * n["block"]
    return dict(parameters=n["all"], ddp=state / GIB, fsdp=(state / processes + gathered) / GIB,
                gathered=gathered / GIB, lora_base=4 * n["all"] / GIB)


def markdown_table(zh: bool = False) -> str:
    rows = {size: {p: computed(size, p) for p in PROCESSES} for size in SIZES}
    if zh:
        head = ["| 模型 | 参数量 | 1 个进程，或 DDP 的每个进程 | " +
                " | ".join(f"FSDP，{p} 个进程，每个进程" for p in PROCESSES) + " | 其中 FSDP 临时聚合的 |"]
    else:
        head = ["| model | parameters | 1 process, or each DDP process | " +
                " | ".join(f"FSDP, {p} processes, each" for p in PROCESSES) + " | of which FSDP gathers at once |"]
    lines = head + ["|---|---:|---:|" + "---:|" * len(PROCESSES) + "---:|"]
    for size, by_n in rows.items():
        first = by_n[PROCESSES[0]]
        lines.append(f"| flan-t5-{size} | {first['parameters'] / 1e6:,.0f}M | {first['ddp']:.2f} GiB | " +
                     " | ".join(f"{by_n[p]['fsdp']:.2f} GiB" for p in PROCESSES) + f" | {first['gathered']:.2f} GiB |")
    large, xl = rows["large"], rows["xl"]
    if zh:
        lines += ["", "24 GiB 能放下什么（只算上表的训练状态，激活值另计）：", "",
                  f"- **一台 24 GiB 的机器，所有进程共用这份内存**：large 全参数微调要 {large[2]['ddp']:.2f} GiB，"
                  f"一个进程放得下；DDP 两个进程要两份（{2 * large[2]['ddp']:.2f} GiB），激活值就没地方放了；FSDP 两个进程"
                  f"合起来仍是一份（{2 * large[2]['fsdp']:.2f} GiB）。XL 全参数微调要 {xl[2]['ddp']:.2f} GiB，"
                  f"怎么分都放不下。XL 加 LoRA：冻结的 fp32 底座 {xl[2]['lora_base']:.2f} GiB，一个进程放得下。",
                  f"- **每个进程有自己的 24 GiB（每进程一块 GPU，或每进程一台机器）**：FSDP 让 XL 全参数微调"
                  f"变得可行：4 个进程时每个 {xl[4]['fsdp']:.2f} GiB，8 个时 {xl[8]['fsdp']:.2f} GiB；"
                  f"2 个进程时每个 {xl[2]['fsdp']:.2f} GiB，加上激活值就超了。DDP 每个进程都要 "
                  f"{xl[2]['ddp']:.2f} GiB，进程再多也放不下。"]
    else:
        lines += ["", "What fits in 24 GiB (the training state above; activations come on top):", "",
                  f"- **One 24 GiB machine, its memory shared by all its processes**: full fine-tuning of large needs "
                  f"{large[2]['ddp']:.2f} GiB, which one process holds; DDP on 2 processes holds it twice "
                  f"({2 * large[2]['ddp']:.2f} GiB), which leaves no room for activations; FSDP on 2 processes holds it once in all "
                  f"({2 * large[2]['fsdp']:.2f} GiB). Full fine-tuning of XL needs {xl[2]['ddp']:.2f} GiB and fits "
                  f"no way. XL with LoRA: its frozen fp32 base is {xl[2]['lora_base']:.2f} GiB, which one process "
                  f"holds.",
                  f"- **24 GiB for each process (one GPU each, or one machine each)**: FSDP makes full fine-tuning "
                  f"of XL possible: {xl[4]['fsdp']:.2f} GiB each on 4 processes, {xl[8]['fsdp']:.2f} GiB on 8 "
                  f"({xl[2]['fsdp']:.2f} GiB each on 2: over, once activations are added). Under DDP each process "
                  f"needs {xl[2]['ddp']:.2f} GiB, however many there are."]
    return "\n".join(lines)


def markdown_table_zh() -> str:
    return markdown_table(zh=True)


# --------------------------------------------------------------------------------------------------
# Measured: the trainer itself, under torchrun
# --------------------------------------------------------------------------------------------------
def local_bytes(tensors) -> int:
    """Bytes of these tensors as this process holds them (a DTensor: its local shard), each storage once."""
    from torch.distributed.tensor import DTensor
    seen, total = set(), 0
    for t in tensors:
        t = t.to_local() if isinstance(t, DTensor) else t
        key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        if key not in seen:
            seen.add(key)
            total += t.untyped_storage().nbytes()
    return total


def worker(settings: dict, report: str):
    """One process of a measured run (under torchrun): train, then write what this process held."""
    from minit5.trainer import TrainConfig, Trainer
    held = dict(libraries=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)  # python, torch, minit5
    trainer = Trainer(TrainConfig(**settings), log=lambda message: None)

    def after_step(optimizer, args, kwargs):
        params = list(trainer.model.parameters())
        held.update(weights=local_bytes(params), gradients=local_bytes([p.grad for p in params if p.grad is not None]),
                    optimizer=local_bytes([t for s in optimizer.state.values() for t in s.values()
                                           if isinstance(t, torch.Tensor)]),
                    peak_training=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)

    trainer.optimizer.register_step_post_hook(after_step)
    trainer.train()
    held["peak_with_save"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    rows = [json.loads(line) for line in (Path(settings["out"]) / "metrics.jsonl").read_text().splitlines()]
    held["tokens_per_s"] = [r["tokens_per_s"] for r in rows if "tokens_per_s" in r]
    Path(f"{report}.{trainer.rank}").write_text(json.dumps(held))
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def measure(size: str, processes: int, fsdp: bool, folder: Path, steps: int = 3) -> list[dict]:
    """One run of `processes` processes; each process's report."""
    config = folder / f"{size}.json"
    T5Config.flan_t5(size, dropout_rate=0.0).save(config)
    data = folder / "pairs.jsonl"
    with open(data, "w") as f:  # 127 + EOS input tokens and 31 + EOS target tokens on the byte-level vocabulary
        for i in range(64):
            f.write(json.dumps({"input": (f"example {i} " * 20)[:127], "target": (f"answer {i} " * 5)[:31]}) + "\n")
    name = f"{size}-{'fsdp' if fsdp else 'ddp'}-{processes}"
    settings = dict(task="seq2seq", data=str(data), config=str(config), out=str(folder / name), steps=steps,
                    batch_size=8, lr=1e-4, warmup=0, schedule="constant", eval_every=10**6, save_every=10**6,
                    log_every=1, max_input_length=128, max_target_length=32, fsdp=fsdp)
    report = folder / f"{name}.json"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
               __file__, "--worker", json.dumps(settings), str(report)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{name} failed:\n{result.stderr[-3000:]}")
    return [json.loads(Path(f"{report}.{rank}").read_text()) for rank in range(processes)]


def measured_table(sizes, processes, skip, folder: Path) -> str:
    lines = ["| model | processes | kind | peak memory, each process | weights + gradients + AdamW, each "
             "process (computed) | peak memory of rank 0 while saving |", "|---|---:|---|---:|---:|---:|"]
    for size in sizes:
        for n in processes:
            for fsdp in (False, True):
                kind = "FSDP" if fsdp else ("DDP" if n > 1 else "one process")
                if (n == 1 and fsdp) or f"{size}:{kind.lower()}:{n}" in skip:
                    continue
                reports = measure(size, n, fsdp, folder)
                peak = [r["peak_training"] / GIB for r in reports]
                shown_peak = f"{max(peak):.2f} GiB" if max(peak) - min(peak) < 0.05 else \
                    f"{min(peak):.2f}-{max(peak):.2f} GiB"
                state = max((r["weights"] + r["gradients"] + r["optimizer"]) / GIB for r in reports)
                c = computed(size, n)
                lines.append(f"| flan-t5-{size} | {n} | {kind} | {shown_peak} | {state:.2f} GiB "
                             f"({(c['fsdp'] - c['gathered']) if fsdp else c['ddp']:.2f} GiB) | "
                             f"{reports[0]['peak_with_save'] / GIB:.2f} GiB |")
                print(lines[-1], file=sys.stderr, flush=True)
    libraries = max(r["libraries"] for r in reports) / GIB
    return "\n".join(lines) + f"\n\n(python, torch and minit5 alone: {libraries:.2f} GiB in each process)"


def timing_table(size: str, processes, folder: Path, steps: int = 8) -> str:
    """tokens/s of steps 3 to `steps` (the first two allocate), DDP and FSDP; a quiet machine only."""
    lines = ["| model | processes | DDP tokens/s | FSDP tokens/s | FSDP / DDP |", "|---|---:|---:|---:|---:|"]
    for n in processes:
        speed = {}
        for fsdp in (False, True):
            rates = measure(size, n, fsdp, folder, steps=steps)[0]["tokens_per_s"][2:]
            speed[fsdp] = sum(rates) / len(rates)
        lines.append(f"| flan-t5-{size} | {n} | {speed[False]:,.0f} | {speed[True]:,.0f} | "
                     f"{speed[True] / speed[False]:.2f}x |")
    return "\n".join(lines)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        return worker(json.loads(sys.argv[2]), sys.argv[3])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--zh", action="store_true", help="the computed table in Chinese")
    parser.add_argument("--measure", action="store_true", help="run the trainer and measure peak memory")
    parser.add_argument("--timing", action="store_true", help="measure DDP's and FSDP's step time (quiet machine)")
    parser.add_argument("--sizes", nargs="+", default=["small", "base"], choices=SIZES)
    parser.add_argument("--processes", nargs="+", type=int, default=[1, 2, 4])
    parser.add_argument("--skip", nargs="*", default=[], help="runs left out, as size:kind:processes (base:ddp:4)")
    args = parser.parse_args()
    if not (args.measure or args.timing):
        print(markdown_table(zh=args.zh))
        return
    with tempfile.TemporaryDirectory() as tmp:
        if args.measure:
            print(measured_table(args.sizes, args.processes, set(args.skip), Path(tmp)))
        if args.timing:
            print(timing_table(args.sizes[0], [n for n in args.processes if n > 1], Path(tmp)))
    print(f"torch {torch.__version__}, {os.cpu_count()} cores; {' '.join(sys.argv[1:])}", file=sys.stderr)


if __name__ == "__main__":
    main()
