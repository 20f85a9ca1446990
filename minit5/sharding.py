"""Fully sharded data parallel for the trainer (`torchrun ... train.py --fsdp`), with PyTorch's FSDP2.

Under DistributedDataParallel every process holds the whole model, its gradients and its optimizer state: with
AdamW in fp32, 16 bytes a parameter (4 weight + 4 gradient + 8 for the two moments) in each process. Under FSDP
each process holds 1/N of them. Every weight becomes a DTensor cut along its first axis into N shards; a unit's
weights are gathered whole (all-gather) only while the unit computes, and freed after; in backward, a unit's
gradients are summed over the processes and cut again (reduce-scatter), so each process keeps the gradient of
its own shard, and the optimizer updates that shard alone. `torch.distributed.fsdp.fully_shard` does all of it;
this module says what the units are, and turns a sharded model back into the files people read.

    units (one all-gather each):  each relative-position-bias table · each encoder block · each decoder block
                                  · the root: the shared embedding (also the output layer when tied), lm_head
                                    (when untied) and the final norms

Why the position-bias tables are units of their own: minit5/model.py's Stack.forward calls block 0's
`position_bias` *before* calling block 0, to compute the bias every block of the stack shares, so the table is
used outside its block's forward, when that block's weights are still shards, and the lookup fails with
"mixed torch.Tensor and DTensor". As a unit of its own, the table is gathered when it is itself called.

The tied embedding of T5 v1.0 needs nothing special: minit5 ties by using one Parameter (`embed.weight`) for the
input embedding and the output layer (`T5.project`), not two parameters made equal; it belongs to the root unit,
which stays gathered for the whole of the root's forward, encoder, decoder and output layer.

The trainer calls four things here: shard_model (in Trainer.wrap_model), gathered_model (the Hugging Face folder
of a checkpoint, on rank 0), save_sharded and load_sharded (the resumable state, torch.distributed.checkpoint).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist

from .lora import add_lora
from .model import T5

# torch's FSDP, DTensor and distributed-checkpoint modules are imported inside the functions below, not here:
# they take about a second to import, which every run without --fsdp would otherwise pay.


def shard_model(model: T5, device: torch.device, bf16: bool = False) -> T5:
    """Shard `model` in place over every process (the default process group) and return it: the same object,
    now an FSDP module whose parameters are DTensors. With bf16, each unit's weights are gathered and used in
    bfloat16 while the stored shards, the optimizer and the gradient sums stay in fp32."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard, register_fsdp_forward_method
    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if bf16 else \
        MixedPrecisionPolicy()
    for block in [*model.encoder.blocks, *model.decoder.blocks]:
        if block.position_bias is not None:  # first: it is called outside its block's forward (see above)
            fully_shard(block.position_bias, mesh=mesh, mp_policy=policy)
        fully_shard(block, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)  # the root: what no block owns
    # generate() calls encode/decode/project directly, not forward: gather the root's weights for the whole call
    # (the blocks still gather on each call of their own forward, so it must decode with step="readable").
    register_fsdp_forward_method(model, "generate")
    return model


def plain(value):
    """A DTensor as an ordinary tensor (clip_grad_norm_ over DTensor gradients returns a replicated DTensor)."""
    from torch.distributed.tensor import DTensor
    return value.full_tensor() if isinstance(value, DTensor) else value


def gathered_model(model: T5, adapter_only: bool = False) -> T5 | None:
    """The full weights gathered into a plain T5 in rank 0's CPU memory, to be saved as Hugging Face's files; None
    in the other processes. Every process must call it (it is collective). The tensors are gathered one at a
    time into the copy and nothing else, so rank 0 never holds more than one full copy. adapter_only (a LoRA
    run): gather the trained adapters alone; the copy's frozen base stays on the "meta" device (no memory)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    options = StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=adapter_only)
    state = get_model_state_dict(model, options=options)  # {} outside rank 0
    if dist.get_rank() != 0:
        return None
    with torch.device("meta"):  # shapes only; the gathered tensors are put in place below
        copy = T5(model.config)
        if model.lora_config:
            settings = model.lora_config
            add_lora(copy, r=settings["r"], alpha=settings["alpha"], targets=settings["targets"],
                     dropout=settings["dropout"], rslora=settings["rslora"])
    copy.load_state_dict(state, strict=not adapter_only, assign=True)
    return copy.eval()


def _state(model: T5, optimizer, adapter_only: bool) -> tuple[dict, object]:
    """{"model": ..., "optimizer": ...} of this process's shards, keyed by parameter name (so that another
    number of processes can read it back), as torch.distributed.checkpoint reads and writes it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict
    options = StateDictOptions(ignore_frozen_params=adapter_only)  # a LoRA run: the base is --init, unchanged
    model_state, optimizer_state = get_state_dict(model, optimizer, options=options)
    return {"model": model_state, "optimizer": optimizer_state}, options


def save_sharded(folder: Path, model: T5, optimizer, adapter_only: bool = False):
    """Every process writes its own shards of the weights and the optimizer state into `folder` (one file per
    process, plus rank 0's `.metadata`). Every process must call it."""
    import torch.distributed.checkpoint as dcp
    state, _ = _state(model, optimizer, adapter_only)
    dcp.save(state, checkpoint_id=str(folder))


def load_sharded(folder: Path, model: T5, optimizer, adapter_only: bool = False):
    """Read back what save_sharded wrote, in place, on the same or another number of processes (each reads the
    slices of the saved shards that make up its own shards now)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import set_state_dict
    state, options = _state(model, optimizer, adapter_only)
    dcp.load(state, checkpoint_id=str(folder))
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"],
                   options=options)
