"""Loading a model to answer with: the one function behind generate.py, python -m minit5.evaluate,
python -m minit5.explore and the docs scripts.

    load_for_inference("out/demo")                                   the demo model of `python train.py`
    load_for_inference("google/flan-t5-small", adapter="out/lora")   a hub id (or folder) with a LoRA adapter
    load_for_inference(DIR, dtype="bfloat16", device="cuda")         half precision on a GPU
    load_for_inference(DIR, quantize="int8")                         int8 weights for decoding on the CPU

It returns (model, tokenizer), the model in eval mode. Everything that can be refused without reading a file
(the device, the dtype, what int8 needs) is refused first, then the folder; each refusal is a LoadError with one
sentence, which the commands print after "error: ". The sentences name the commands' options (--device,
--quantize), since that is where the settings come from.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

DEFAULT_MODEL = "out/demo"  # where `python train.py` saves its model
DTYPES = ("float32", "bfloat16", "float16")


class LoadError(ValueError):
    """A model that cannot be loaded as asked: one sentence saying why."""


def check_device(device: str) -> None:
    """cpu, cuda or cuda:N, and a GPU that torch sees; LoadError otherwise."""
    if device != "cpu" and re.fullmatch(r"cuda(:\d+)?", device) is None:
        raise LoadError(f"--device must be cpu, cuda or cuda:N, got {device!r}")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise LoadError(f"--device {device} was asked for, but torch sees no CUDA GPU")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise LoadError(f"--device {device}: torch sees only {torch.cuda.device_count()} CUDA GPU(s)")


def check_options(device: str = "cpu", dtype: str = "float32", quantize: str | None = None) -> None:
    """The settings alone, before any file is read: a typo costs no loading time."""
    if dtype not in DTYPES:
        raise LoadError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    check_device(device)
    if quantize is not None:
        if quantize != "int8":
            raise LoadError(f"--quantize must be int8, got {quantize!r}")
        offending = [f"--{k} {v}" for k, v in (("device", device), ("dtype", dtype)) if v not in ("cpu", "float32")]
        if offending:
            raise LoadError(f"--quantize {quantize}: int8 quantization runs on CPU from a float32 model; "
                            f"drop {' and '.join(offending)}")


def load_for_inference(name: str = DEFAULT_MODEL, adapter: str | None = None, dtype: str = "float32",
                       device: str = "cpu", quantize: str | None = None):
    """(model, tokenizer) of a folder or hub id, ready to generate: in `dtype` on `device`, with the LoRA adapter
    merged into the weights (so decoding runs at full speed), int8 if asked. LoadError with one sentence else."""
    from .checkpoint import CheckpointError
    from .lora import AdapterError, load_adapter, merge_lora
    from .model import T5
    from .tokenizer import Tokenizer, TokenizerError

    check_options(device, dtype, quantize)
    if name == DEFAULT_MODEL and not Path(DEFAULT_MODEL).exists():
        raise LoadError(f"no model at {DEFAULT_MODEL}; make one with `python train.py` (about 6 minutes on 2 CPU "
                        f"cores) or pass --model DIR_OR_HUB_ID, e.g. --model google/flan-t5-small")
    try:
        model = T5.from_pretrained(name, dtype=getattr(torch, dtype), device=device).eval()
        tokenizer = Tokenizer.from_pretrained(name)
        if adapter:
            merge_lora(load_adapter(model, adapter))
    except (CheckpointError, TokenizerError, AdapterError) as e:
        raise LoadError(str(e)) from None
    if quantize:
        from .quant import quantize as to_int8
        try:
            to_int8(model, quantize)
        except ValueError as e:
            raise LoadError(f"--quantize {quantize}: {e}") from None
    return model, tokenizer
