"""Run by tests/test_processes.py under torchrun: several training runs, one after another, in the same processes
(starting torchrun and importing torch costs more than a tiny run), sharing one process group.

    torchrun --standalone --nproc_per_node 2 tests/fsdp_runs.py RUNS_JSON

RUNS_JSON is a list of {"settings": TrainConfig fields, ...} with, optionally,
    "record_dtypes": FILE   rank 0 writes the dtypes a block's weights have while it computes (FSDP mixed precision)
    "die_at_save": STEP     every process SIGKILLs itself in the checkpoint of STEP, right after writing its shards
                            (the model files are not written, the checkpoint not committed)
"""

import json
import os
import signal
import sys

import torch
import torch.distributed as dist

from minit5 import sharding
from minit5.trainer import TrainConfig, Trainer


def die_at_save(step: int):
    save_sharded = sharding.save_sharded

    def save_then_die(folder, *args, **kwargs):
        save_sharded(folder, *args, **kwargs)
        if folder.parent.name == f".tmp-step-{step:08d}":
            os.kill(os.getpid(), signal.SIGKILL)

    sharding.save_sharded = save_then_die


def record_dtypes(trainer: Trainer, out: str):
    seen = set()  # the weight of a layer inside a block, while the block computes
    layer = trainer.model.encoder.blocks[0].ffn.up
    layer.register_forward_pre_hook(lambda module, args: seen.add(str(module.weight.dtype)))
    return lambda: trainer.is_main and open(out, "w").write(json.dumps(sorted(seen)))


def main(runs):
    for run in runs:
        if "die_at_save" in run:
            die_at_save(run["die_at_save"])
        trainer = Trainer(TrainConfig(**run["settings"]), log=lambda message: None)
        report = record_dtypes(trainer, run["record_dtypes"]) if "record_dtypes" in run else None
        trainer.train()
        if report:
            report()
    dist.barrier()  # leave together: a process group torn down while Python exits can abort
    dist.destroy_process_group()


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(json.loads(sys.argv[1]))
