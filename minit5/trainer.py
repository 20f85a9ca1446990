"""The trainer: T5's span-corruption pretraining, text-to-text fine-tuning, and the built-in demo.

    settings ─► checks (before any work) ─► model + tokenizer ─► data ─► loop:
        global batch (BatchSampler) ─► this process's share ─► micro-batches ─► forward/backward
        ─► clip, optimizer step, schedule ─► log / evaluate / checkpoint

One step uses one global batch of `batch_size` examples, whatever the number of processes (torchrun) and of
gradient-accumulation micro-batches: the loss is summed over every target token of the global batch and divided
by their total count, so the gradient is the same token-level mean Hugging Face computes for one big batch.

A run lives in one folder (`--out`):
    config.json, model.safetensors, tokenizer files   the latest model, for generate.py and transformers
    checkpoints/step-00001000/                         a resumable checkpoint: model + trainer_state.pt
    checkpoints/latest                                 the name of the newest complete checkpoint
    run.json                                           the settings and model config of this run
    metrics.jsonl, loss.png                            the log, one JSON object per line; the curve
A LoRA run (--lora-r) keeps the base (--init) frozen and writes only what changes: adapter_config.json and
adapter_model.safetensors (peft's files) at the top and in each checkpoint; --merge-lora adds merged/, a full model.
Checkpoints are written to a temporary folder, flushed to disk, and renamed into place, so a kill at any moment
leaves the previous checkpoint intact; `--resume` continues bit for bit (weights, optimizer, schedule, data
position and every random number generator).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import random
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from . import data as D
from . import demo
from . import evaluate as E
from .checkpoint import CheckpointError, atomic_write, resolve_path, write_json
from .config import ConfigError, T5Config
from .lora import AdapterError, add_lora, load_adapter, merge_lora, save_adapter, trainable_summary
from .model import T5, Attention
from .tokenizer import Tokenizer, TokenizerError

TASKS = ("demo", "seq2seq", "span-corruption")
OPTIMIZERS = ("adamw", "adafactor")
SCHEDULES = ("constant", "inverse-sqrt", "cosine", "linear")


def named_config(name: str, vocab_size: int) -> T5Config:
    """Model shapes by name: "tiny" (the demo's), a flan-T5 size (small, base, large, xl, xxl), or a config.json."""
    if name.endswith(".json"):
        return T5Config.from_json_file(name)
    if name == "tiny":  # a T5 v1.1-style model of 1.3M parameters (byte vocabulary), trained by the demo
        return T5Config(vocab_size=vocab_size, d_model=128, d_ff=256, d_kv=32, num_heads=4, num_layers=3,
                        num_decoder_layers=3, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
                        dropout_rate=0.0)
    try:
        return T5Config.flan_t5(name, vocab_size=vocab_size)
    except ConfigError:
        raise ConfigError(f"--config {name!r} is not a known model size; use tiny, small, base, large, xl or xxl") \
            from None


@dataclass
class TrainConfig:
    task: str = "demo"  # demo | seq2seq | span-corruption
    data: str | None = None  # seq2seq: training pairs (.jsonl with input/target, or .tsv)
    data_format: str | None = None  # jsonl or tsv, for --data/--eval-data files named otherwise
    eval_data: str | None = None  # seq2seq: held-out pairs (default: none)
    text: list[str] = field(default_factory=list)  # span-corruption: plain text files
    one_document_per_file: bool = False  # span-corruption: a file is one document (default: a line is)
    init: str | None = None  # start from these pretrained weights (folder or hub id), with their tokenizer
    config: str = "tiny"  # without --init: a fresh model of this shape (tiny, small, base, ..., or a config.json)
    tokenizer: str | None = None  # without --init: this tokenizer folder instead of the byte-level one
    out: str = "out/demo"
    resume: bool = False
    overwrite: bool = False
    steps: int = 3000
    batch_size: int = 64  # examples per optimizer step, over all processes and micro-batches
    grad_accum: int = 1  # micro-batches per step (each process)
    lr: float = 1e-3
    optimizer: str = "adamw"
    beta2: float = 0.98  # AdamW's second-moment decay (0.98 rather than 0.999: steadier at a high --lr)
    schedule: str = "cosine"
    warmup: int = 200
    weight_decay: float = 0.01
    clip: float = 1.0  # max gradient norm (0 = off)
    dropout: float | None = None  # override the model's dropout rate
    dtype: str = "float32"  # float32, or bfloat16 autocast
    gradient_checkpointing: bool = False
    compile: bool = False
    device: str = "cpu"
    seed: int = 0
    max_input_length: int = 512
    max_target_length: int = 128
    inputs_length: int = 512  # span-corruption: encoder tokens per example
    group_by_length: bool = False
    eval_every: int = 500
    eval_examples: int = 500  # held-out examples per evaluation
    save_every: int = 500
    log_every: int = 10
    keep_checkpoints: int = 2
    lora_r: int = 0  # > 0: train a LoRA adapter of this rank on the frozen --init model (minit5/lora.py)
    lora_alpha: float = 16.0  # the adapter's update is scaled by lora_alpha / lora_r
    lora_dropout: float = 0.0  # dropout on the adapter's input
    lora_targets: str = "q,v"  # adapted layers, Hugging Face names: q, k, v, o, wi_0, wi_1, wi, wo (or all-linear)
    merge_lora: bool = False  # at the end, also write the base with the adapter merged in, to --out/merged


class TrainError(ValueError):
    """Settings or files that make training impossible; raised before any training starts."""


# Settings that may change on --resume: they do not touch the arithmetic of the training steps. (--steps moves
# the end of the schedule, which is what asking for more steps means.) Everything else must be as it was.
RESUME_MAY_CHANGE = ("steps", "eval_data", "eval_examples", "eval_every", "save_every", "log_every",
                     "keep_checkpoints", "device", "compile", "out", "resume", "overwrite")
# Settings that say which run a folder holds: another value is another run, not a changed one.
RUN_IDENTITY = ("task", "data", "text", "init", "config", "tokenizer")
PATH_SETTINGS = ("data", "eval_data", "text", "init", "config", "tokenizer")
# config.json keys that describe a file, not the model (transformers and minit5 write the weights' dtype)
NOT_MODEL_KEYS = ("dtype", "torch_dtype", "transformers_version")


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def resolved(setting: str, value):
    """A path setting as an absolute path, so that out/demo, ./out/demo/ and /abs/out/demo compare equal.
    Hub ids (init) and size names (config) stay as they are."""
    if setting not in PATH_SETTINGS or value is None or (setting == "config" and not str(value).endswith(".json")):
        return value
    if isinstance(value, list):
        return [resolved(setting, v) for v in value]
    path = Path(value).expanduser()
    if setting in ("init", "tokenizer") and not path.exists():
        return value  # a hub id
    return str(path.resolve())


def data_format_of(path: str, given: str | None) -> str | None:
    return given or {".jsonl": "jsonl", ".tsv": "tsv"}.get(Path(path).suffix.lower())


# --------------------------------------------------------------------------------------------------
# Checks that run before anything is loaded
# --------------------------------------------------------------------------------------------------
def check_settings(cfg: TrainConfig, world_size: int):
    def need(ok, message):
        if not ok:
            raise TrainError(message)
    need(cfg.task in TASKS, f"--task must be one of {', '.join(TASKS)}, got {cfg.task!r}")
    need(cfg.steps >= 1, f"--steps must be at least 1, got {cfg.steps}")
    need(cfg.seed >= 0, f"--seed must be >= 0, got {cfg.seed}")
    for name in ("max_input_length", "max_target_length", "inputs_length"):
        need(getattr(cfg, name) >= 2, f"{flag(name)} must be at least 2 (one token and EOS), got {getattr(cfg, name)}")
    need(cfg.eval_examples >= 1, f"--eval-examples must be at least 1, got {cfg.eval_examples}")
    need(cfg.batch_size >= 1, f"--batch-size must be at least 1, got {cfg.batch_size}")
    need(cfg.grad_accum >= 1, f"--grad-accum must be at least 1, got {cfg.grad_accum}")
    need(cfg.batch_size >= world_size * cfg.grad_accum,
         f"--batch-size {cfg.batch_size} is smaller than processes x --grad-accum ({world_size} x {cfg.grad_accum})")
    need(cfg.lr > 0 and math.isfinite(cfg.lr), f"--lr must be a positive number, got {cfg.lr}")
    need(cfg.optimizer in OPTIMIZERS, f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {cfg.optimizer!r}")
    need(cfg.schedule in SCHEDULES, f"--schedule must be one of {', '.join(SCHEDULES)}, got {cfg.schedule!r}")
    need(cfg.warmup >= 0, f"--warmup must be >= 0, got {cfg.warmup}")
    need(0 < cfg.beta2 < 1, f"--beta2 must be in (0, 1), got {cfg.beta2}")
    need(cfg.weight_decay >= 0, f"--weight-decay must be >= 0, got {cfg.weight_decay}")
    need(cfg.clip >= 0, f"--clip must be >= 0, got {cfg.clip}")
    need(cfg.dropout is None or 0 <= cfg.dropout < 1, f"--dropout must be in [0, 1), got {cfg.dropout}")
    need(cfg.dtype in ("float32", "bfloat16"), f"--dtype must be float32 or bfloat16, got {cfg.dtype!r}")
    need(cfg.eval_every >= 1 and cfg.save_every >= 1 and cfg.log_every >= 1,
         "--eval-every, --save-every and --log-every must be at least 1")
    need(cfg.keep_checkpoints >= 1, "--keep-checkpoints must be at least 1")
    need(not (cfg.resume and cfg.overwrite), "--resume and --overwrite contradict each other; pass one")
    need(cfg.device == "cpu" or re.fullmatch(r"cuda(:\d+)?", cfg.device) is not None,
         f"--device must be cpu, cuda or cuda:N, got {cfg.device!r}")
    if cfg.device.startswith("cuda"):
        need(torch.cuda.is_available(), "--device cuda was asked for, but torch sees no CUDA GPU")
    if cfg.task == "seq2seq":
        need(cfg.data is not None, "--task seq2seq needs --data FILE.jsonl (or .tsv)")
    if cfg.task == "span-corruption":
        need(bool(cfg.text), "--task span-corruption needs --text FILE [FILE ...]")
    if cfg.task == "demo":
        need(cfg.init is None and cfg.tokenizer is None, "the demo trains a fresh model on the byte tokenizer; "
             "--init and --tokenizer are for seq2seq or span-corruption")
    need(not (cfg.init and cfg.config != "tiny"),
         f"--config {cfg.config} describes a fresh model, but --init {cfg.init} brings its own config.json; pass one")
    need(not (cfg.init and cfg.tokenizer), "--init brings its own tokenizer; --tokenizer is for a fresh model")
    need(cfg.data_format in (None, "jsonl", "tsv"), f"--data-format must be jsonl or tsv, got {cfg.data_format!r}")
    for name in ("data", "eval_data"):
        path = getattr(cfg, name)
        need(path is None or data_format_of(path, cfg.data_format) is not None,
             f"{flag(name)} {path}: cannot tell its format from the name; call it .jsonl or .tsv, "
             f"or pass --data-format jsonl (or tsv)")
    for path in ([cfg.data] if cfg.data else []) + ([cfg.eval_data] if cfg.eval_data else []) + list(cfg.text):
        need(Path(path).is_file(), f"data file {path} does not exist")
    for name in ("init", "tokenizer"):  # a local folder is checked here; a hub id when it is fetched
        path = getattr(cfg, name)
        if path and Path(path).expanduser().exists():
            need(Path(path).expanduser().is_dir(), f"{flag(name)} {path} is a file; pass the folder that holds it")
        elif path and (str(path).startswith((".", "/", "~")) or re.fullmatch(r"[\w.-]+/[\w.-]+", str(path)) is None):
            need(False, f"{flag(name)} folder {path} does not exist")
    need(not Path(cfg.out).exists() or Path(cfg.out).is_dir(),
         f"--out {cfg.out} is a file; the run needs a folder (a new one, or a run to --resume)")
    check_lora_settings(cfg)


def check_lora_settings(cfg: TrainConfig):
    if cfg.lora_r == 0:
        if cfg.merge_lora:
            raise TrainError("--merge-lora merges a LoRA adapter; it needs --lora-r")
        return
    problems = [(cfg.lora_r >= 1, f"--lora-r must be 0 (full fine-tuning) or a positive rank, got {cfg.lora_r}"),
                (cfg.init is not None, "--lora-r trains an adapter on pretrained weights: it needs --init BASE"),
                (cfg.lora_alpha > 0 and math.isfinite(cfg.lora_alpha),
                 f"--lora-alpha must be a positive number, got {cfg.lora_alpha}"),
                (0 <= cfg.lora_dropout < 1, f"--lora-dropout must be in [0, 1), got {cfg.lora_dropout}"),
                (bool(lora_target_list(cfg)), "--lora-targets names no layer; e.g. q,v or q,k,v,o,wi_0,wi_1,wo")]
    for ok, message in problems:
        if not ok:
            raise TrainError(message)


def lora_target_list(cfg: TrainConfig):
    """--lora-targets as add_lora takes it: a list of names, or the string "all-linear"."""
    if cfg.lora_targets.strip().lower() == "all-linear":
        return "all-linear"
    return [t.strip() for t in cfg.lora_targets.split(",") if t.strip()]


def check_out_dir(cfg: TrainConfig, run_info: dict) -> str:
    """What to do with --out: "fresh", "resume", or "done" (the same run already finished)."""
    out = Path(cfg.out)
    run_file = out / "run.json"
    if not out.exists() or not any(out.iterdir()):
        if cfg.resume:
            raise TrainError(f"--resume: {out} holds no run to resume")
        return "fresh"
    if not run_file.exists():
        if cfg.overwrite:
            raise TrainError(f"{out} holds files that are not a minit5 run; --overwrite only replaces a minit5 run, "
                             f"so choose another --out")
        raise TrainError(f"{out} already holds files that are not a minit5 run; choose another --out")
    try:
        previous = json.loads(run_file.read_text(encoding="utf-8"))
        before, now = previous["settings"], run_info["settings"]
        before_model = {k: v for k, v in previous["model_config"].items() if k not in NOT_MODEL_KEYS}
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as e:
        raise TrainError(f"{run_file} is not a valid run.json ({e}); remove {out} or choose another --out") from None
    if cfg.overwrite:
        shutil.rmtree(out)
        return "fresh"

    def differs(name):
        return resolved(name, before.get(name)) != resolved(name, now.get(name))

    def describe(names):
        return "; ".join(f"{flag(n)} was {before.get(n)}, now {now.get(n)}" for n in names)

    other_run = [n for n in RUN_IDENTITY if differs(n)]
    now_model = {k: v for k, v in run_info["model_config"].items() if k not in NOT_MODEL_KEYS}
    model_changes = sorted(k for k in set(before_model) | set(now_model) if before_model.get(k) != now_model.get(k)
                           and k != "dropout_rate")  # a setting (--dropout), checked with the others below
    if other_run or model_changes:
        what = "; ".join(([describe(other_run)] if other_run else []) +
                         ([f"model config differs in {', '.join(model_changes)}"] if model_changes else []))
        hint = " (--out defaults to out/demo, the demo's folder)" if Path(cfg.out) == Path("out/demo") else ""
        raise TrainError(f"{out} holds another run ({what}); choose another --out{hint}, "
                         f"or --overwrite to replace it")
    changed = [n for n in sorted(set(before) | set(now)) if n not in RESUME_MAY_CHANGE and differs(n)]
    if before_model.get("dropout_rate") != now_model.get("dropout_rate") and "dropout" not in changed:
        changed.append("dropout")  # the config file's rate changed
    latest = latest_checkpoint(out)
    if latest is None:  # killed before its first checkpoint: nothing can be resumed
        raise TrainError(f"{out} holds a run that stopped before its first checkpoint, so there is nothing to "
                         f"resume; --overwrite starts it again")
    if cfg.resume:
        if changed:
            raise TrainError(f"--resume: {describe(changed)}; an exact resume needs the settings the run started "
                             f"with (only {', '.join(flag(n) for n in RESUME_MAY_CHANGE[:-3])} may change), "
                             f"so pass the old values, or --overwrite to start again")
        return "done" if checkpoint_step(latest) >= cfg.steps else "resume"
    if not changed and checkpoint_step(latest) >= cfg.steps:  # the name says the step: no optimizer state read
        return "done"
    raise TrainError(f"{out} already holds a run; pass --resume to continue it, --overwrite to start again, "
                     f"or choose another --out")


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def checkpoint_step(folder: Path) -> int:
    return int(folder.name.removeprefix("step-"))


def latest_checkpoint(out: Path) -> Path | None:
    pointer = out / "checkpoints" / "latest"
    if not pointer.exists():
        return None
    path = out / "checkpoints" / pointer.read_text().strip()
    return path if (path / "trainer_state.pt").exists() else None


# --------------------------------------------------------------------------------------------------
# Pieces: optimizer groups, schedules, loss
# --------------------------------------------------------------------------------------------------
def parameter_groups(model: T5, weight_decay: float):
    """Weight decay on the matrices; none on norm weights and position-bias tables (scales and offsets)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:  # frozen (the base model under a LoRA adapter): not in the optimizer at all
            continue
        (no_decay if p.dim() < 2 or "position_bias" in name else decay).append(p)
    return [dict(params=decay, weight_decay=weight_decay), dict(params=no_decay, weight_decay=0.0)]


def make_optimizer(cfg: TrainConfig, model: T5):
    groups = parameter_groups(model, cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, cfg.beta2), eps=1e-8, fused=True)  # one kernel
    return torch.optim.Adafactor(groups, lr=cfg.lr)  # T5's own optimizer (factored second moments)


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Multiplier on --lr at `step` (0-based): linear warmup, then the schedule."""
    warmup = max(cfg.warmup, 1)
    if cfg.schedule == "inverse-sqrt":  # T5: 1/sqrt(max(step, warmup)), scaled to reach 1 at the warmup's end
        return min((step + 1) / warmup, math.sqrt(warmup / max(step + 1, warmup)))
    if step < cfg.warmup:
        return (step + 1) / warmup
    if cfg.schedule == "constant":
        return 1.0
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    if cfg.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return max(0.0, 1 - progress)  # linear


def summed_loss(model, batch):
    """Sum (not mean) of the batch's token cross-entropies; the caller divides by the global token count."""
    decoder_input_ids = unwrap(model).shift_right(batch["labels"])
    logits, _ = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                      decoder_input_ids=decoder_input_ids)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), batch["labels"].reshape(-1),
                           ignore_index=-100, reduction="sum")


def unwrap(model) -> T5:
    model = getattr(model, "_orig_mod", model)  # torch.compile
    return getattr(model, "module", model)  # DistributedDataParallel


def set_dropout(model: T5, rate: float):
    model.config.dropout_rate = rate
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = rate
        elif isinstance(module, Attention):
            module.dropout = rate


def rng_state() -> dict:
    """Every random number generator's state, in types torch.load(weights_only=True) accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = dict(torch=torch.get_rng_state(), numpy=[kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss,
                                                     gauss], python=random.getstate())
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict):
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _fsync_tree(folder: Path):
    for path in folder.iterdir():
        with open(path, "rb") as f:
            os.fsync(f.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------
class Trainer:
    def __init__(self, cfg: TrainConfig, log=print):
        self.cfg, self.log = cfg, log
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.is_main = self.rank == 0
        check_settings(cfg, self.world_size)
        if self.world_size > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if cfg.device.startswith("cuda") else "gloo")
        if cfg.device.startswith("cuda"):
            local_rank = int(os.environ.get("LOCAL_RANK", "0"))
            cfg.device = f"cuda:{local_rank}" if self.world_size > 1 else cfg.device
        self.device = torch.device(cfg.device)

        # tokenizer and model config first: cheap, and enough to check the output folder
        try:
            if cfg.init:
                self.tokenizer = Tokenizer.from_pretrained(cfg.init)
                model_config = T5Config.from_json_file(resolve_path(cfg.init, what="--init") / "config.json")
            else:
                self.tokenizer = Tokenizer.from_pretrained(cfg.tokenizer) if cfg.tokenizer else Tokenizer.byte_level()
                model_config = named_config(cfg.config, self.tokenizer.vocab_size)
        except (CheckpointError, TokenizerError, ConfigError) as e:
            raise TrainError(str(e)) from None
        if cfg.dropout is not None:
            model_config.dropout_rate = cfg.dropout
        if self.tokenizer.vocab_size > model_config.vocab_size:
            raise TrainError(f"the tokenizer has {self.tokenizer.vocab_size} ids but the model only "
                             f"{model_config.vocab_size} embedding rows")
        settings = {k: resolved(k, v) for k, v in dataclasses.asdict(cfg).items()
                    if k not in ("resume", "overwrite", "steps", "eval_every", "save_every", "log_every",
                                 "keep_checkpoints", "device", "compile")}
        self.run_info = dict(settings=settings, model_config=model_config.to_dict())
        self.mode = check_out_dir(cfg, self.run_info) if self.is_main else None
        if self.world_size > 1:  # every process follows rank 0's decision
            decision = [self.mode]
            dist.broadcast_object_list(decision, src=0)
            self.mode = decision[0]
        if self.mode == "done":
            return

        self.train_set, self.eval_set, self.eval_pairs, self.eval_groups, data_notes = self._load_data()
        for note in data_notes:
            self._log(note)

        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        if self.mode == "resume":
            source = latest_checkpoint(Path(cfg.out))
            # a LoRA run's checkpoint holds only the adapter: the base comes from --init again
            model = T5.from_pretrained(cfg.init if cfg.lora_r else source, device=self.device)
        elif cfg.init:
            model = T5.from_pretrained(cfg.init, device=self.device)
        else:
            model = T5(model_config).to(self.device)
            if cfg.config != "tiny" and not cfg.config.endswith(".json") and cfg.tokenizer is None:
                self._log(f"--config {cfg.config} without --init: a fresh model of {model.num_parameters() / 1e6:.0f}M "
                          f"parameters on the byte-level vocabulary ({model_config.vocab_size} ids), not "
                          f"flan-T5-{cfg.config} with its 32128-id SentencePiece vocabulary; --tokenizer DIR "
                          f"(a folder with tokenizer.json or spiece.model) pretrains on that one")
        if cfg.dropout is not None:
            set_dropout(model, cfg.dropout)
        if cfg.lora_r:  # freeze the base, wrap the target layers (after set_dropout: it would reset lora_dropout)
            try:
                if self.mode == "resume":
                    load_adapter(model, source)
                else:
                    add_lora(model, r=cfg.lora_r, alpha=cfg.lora_alpha, targets=lora_target_list(cfg),
                             dropout=cfg.lora_dropout)
            except AdapterError as e:
                raise TrainError(str(e)) from None
        model.train()
        model.set_gradient_checkpointing(cfg.gradient_checkpointing)
        self.model = model
        self.optimizer = make_optimizer(cfg, model)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(s, cfg))
        lengths = D.example_lengths(self.train_set) if cfg.group_by_length else None
        try:
            self.sampler = D.BatchSampler(len(self.train_set), cfg.batch_size, cfg.seed, lengths=lengths)
        except D.DataError as e:
            raise TrainError(str(e)) from None
        self.step, self.last_eval = 0, {}
        self.grad_norm = torch.zeros(())  # of the last step, before clipping
        if self.mode == "resume":
            self._load_trainer_state(source)
        self.wrapped = model
        if self.world_size > 1:
            self.wrapped = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if cfg.compile:
            self.wrapped = torch.compile(self.wrapped)

    # -- data ---------------------------------------------------------------------------------------
    def _load_data(self):
        cfg, tok = self.cfg, self.tokenizer
        notes, eval_pairs, groups = [], None, None
        try:
            if cfg.task == "demo":
                train_pairs, eval_pairs = demo.demo_tasks(cfg.seed)
                train, stats = D.tokenize_pairs(train_pairs, tok, cfg.max_input_length, cfg.max_target_length)
                evaluation, _ = D.tokenize_pairs(eval_pairs, tok, cfg.max_input_length, cfg.max_target_length)
                groups = [demo.language(source) for source, _ in eval_pairs]  # exact match per language
                counts = ", ".join(f"{groups.count(lang)} {lang}" for lang in demo.LANGUAGES)
                notes.append(f"demo data: {len(train)} training pairs, {len(evaluation)} held-out pairs ({counts})")
            elif cfg.task == "seq2seq":
                train, stats = D.load_pairs(cfg.data, tok, cfg.max_input_length, cfg.max_target_length,
                                            format=data_format_of(cfg.data, cfg.data_format))
                notes.append(f"{cfg.data}: {stats.summary()}")
                evaluation = None
                if cfg.eval_data:
                    eval_pairs = D.read_pairs(cfg.eval_data, format=data_format_of(cfg.eval_data, cfg.data_format))
                    evaluation, eval_stats = D.tokenize_pairs(eval_pairs, tok, cfg.max_input_length,
                                                              cfg.max_target_length)
                    notes.append(f"{cfg.eval_data}: {eval_stats.summary()}")
            else:
                full = D.span_corruption_dataset(cfg.text, tok, cfg.inputs_length, seed=cfg.seed,
                                                 one_document_per_file=cfg.one_document_per_file)
                held_out = min(len(full) // 20, cfg.eval_examples) if len(full) >= 20 else 0
                train = _Subset(full, range(held_out, len(full)))  # the first chunks are held out
                evaluation = _Subset(full, range(held_out)) if held_out else None
                notes.append(f"span corruption: {len(full)} chunks of {full.raw_length} tokens "
                             f"({held_out} held out for evaluation)")
        except D.DataError as e:  # minit5.data names Python arguments; here they are command-line flags
            raise TrainError(re.sub(r"\b(max_input_length|max_target_length|inputs_length)\b",
                                    lambda m: flag(m.group(1)), str(e))) from None
        if eval_pairs is not None and evaluation is not None:
            limit = min(len(evaluation), cfg.eval_examples)
            evaluation, eval_pairs = evaluation[:limit], eval_pairs[:limit]
            groups = groups[:limit] if groups else None
        return train, evaluation, eval_pairs, groups, notes

    # -- checkpoints --------------------------------------------------------------------------------
    def _trainer_state(self) -> dict:
        return dict(step=self.step, optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(),
                    sampler=self.sampler.state_dict(), rng=rng_state(), world_size=self.world_size)

    def _load_trainer_state(self, folder: Path):
        state = torch.load(folder / "trainer_state.pt", weights_only=True, map_location="cpu")
        self.step = state["step"]
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        try:
            self.sampler.load_state_dict(state["sampler"])
        except D.DataError as e:
            raise TrainError(f"--resume: {e}") from None
        set_rng_state(state["rng"])
        self._log(f"resumed from {folder} at step {self.step}")

    def save_checkpoint(self):
        if not self.is_main:
            return
        out = Path(self.cfg.out)
        checkpoints = out / "checkpoints"
        checkpoints.mkdir(parents=True, exist_ok=True)
        name = checkpoint_name(self.step)
        tmp = checkpoints / f".tmp-{name}"
        for stale in checkpoints.glob(".tmp-step-*"):  # left by a run killed while saving
            shutil.rmtree(stale)
        if self.cfg.lora_r:  # only what changes: the adapter (the base is --init, unchanged)
            save_adapter(self.model, tmp, base_model_name_or_path=self.cfg.init)
        else:
            self.model.save_pretrained(tmp)
            self.tokenizer.save_pretrained(tmp)
        torch.save(self._trainer_state(), tmp / "trainer_state.pt")
        _fsync_tree(tmp)
        final = checkpoints / name
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)  # the checkpoint appears whole, or not at all
        atomic_write(checkpoints / "latest", lambda p: p.write_text(name + "\n"))
        # Publish the model at the top of --out for generate.py: hard links to the checkpoint's files (no
        # second copy on disk), each renamed into place.
        for file in final.iterdir():
            if file.name != "trainer_state.pt":
                link = out / f".{file.name}.tmp"
                try:
                    os.link(file, link)
                except OSError:
                    shutil.copy2(file, link)
                os.replace(link, out / file.name)
        kept = sorted(p for p in checkpoints.iterdir() if p.is_dir() and p.name.startswith("step-"))
        for old in kept[:-self.cfg.keep_checkpoints]:
            shutil.rmtree(old)

    # -- logging ------------------------------------------------------------------------------------
    def _log(self, message: str):
        if self.is_main:
            self.log(message)

    def _record(self, entry: dict):
        if self.is_main:  # one write of one whole line: a reader never sees half of it as the last line
            fd = os.open(Path(self.cfg.out) / "metrics.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                os.write(fd, (json.dumps(entry) + "\n").encode("utf-8"))
            finally:
                os.close(fd)

    # -- evaluation ---------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> dict:
        """Held-out loss and, for text-to-text data, exact match of greedy answers (rank 0 only); for the demo,
        exact match per language too (exact_match_en, exact_match_zh)."""
        if self.eval_set is None or not self.is_main:
            return {}
        model, cfg = self.model, self.cfg
        was_training = model.training
        model.eval()
        total, tokens, predictions = 0.0, 0, []
        examples = self.eval_set if isinstance(self.eval_set, list) else \
            D.fetch(self.eval_set.dataset, list(self.eval_set.indices), 0)
        for start in range(0, len(examples), 64):
            chunk = examples[start:start + 64]
            batch = {k: v.to(self.device) for k, v in D.collate(chunk, self.tokenizer.pad_id).items()}
            with self._autocast():
                total += summed_loss(model, batch).item()
            tokens += int((batch["labels"] != -100).sum())
            if self.eval_pairs is not None:
                longest = max(len(labels) for _, labels in chunk)
                # step="readable": the fast path re-lays out weights in memory, which would change later training
                # arithmetic and break bit-exact resume.
                out = model.generate(batch["input_ids"], batch["attention_mask"], max_new_tokens=longest, step="readable")
                predictions += [self.tokenizer.decode(row[1:]) for row in out]
        model.train(was_training)
        result = {"eval_loss": total / max(tokens, 1)}
        if self.eval_pairs is not None:  # exact match and ROUGE-1/2/L F1, as evaluate.py reports them
            targets = [target for _, target in self.eval_pairs[:len(predictions)]]
            result.update(E.scores(predictions, targets))
            for group in sorted(set(self.eval_groups or [])):  # the demo: exact match per language
                mine = [E.exact_match(p, t) for p, t, g in zip(predictions, targets, self.eval_groups) if g == group]
                result[f"exact_match_{group}"] = sum(mine) / len(mine)
        return result

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.dtype == "bfloat16")

    # -- the loop -----------------------------------------------------------------------------------
    def train(self) -> dict:
        cfg = self.cfg
        if self.mode == "done":
            finished = checkpoint_step(latest_checkpoint(Path(cfg.out)))
            self._log(f"{cfg.out} already holds this run, finished at step {finished}: nothing left to do "
                      f"(--resume with a larger --steps continues it, --overwrite starts again)")
            return {}
        out = Path(cfg.out)
        if self.is_main:
            out.mkdir(parents=True, exist_ok=True)
            write_json(out / "run.json", self.run_info, sort_keys=False)
            if self.mode == "resume":  # the log may run past the checkpoint: those steps are done again
                keep_metrics_up_to(out / "metrics.jsonl", self.step)
            self._log(f"model: {self.model.num_parameters():,} parameters · {self.world_size} process(es) · "
                      f"{cfg.batch_size} examples per step · {cfg.steps} steps · out: {out}")
            if cfg.lora_r:  # in peft's words, so the two can be compared
                self._log(f"LoRA r={cfg.lora_r} alpha={cfg.lora_alpha:g} on {cfg.lora_targets}: "
                          f"{trainable_summary(self.model)}")
        from tqdm import tqdm
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not self.is_main, dynamic_ncols=True,
                   desc="train")
        try:
            self._loop(bar)
        finally:  # Ctrl-C too: the bar ends before train.py says what survived
            bar.close()
        if self.is_main:
            plot_metrics(out)
            if cfg.merge_lora:
                self.write_merged(out / "merged")
        return self.last_eval

    def _loop(self, bar):
        cfg = self.cfg
        window_tokens, window_start = 0, time.perf_counter()
        while self.step < cfg.steps:
            loss, step_tokens = self.train_step()
            self.step += 1
            window_tokens += step_tokens
            bar.update(1)
            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                elapsed = time.perf_counter() - window_start
                entry = dict(step=self.step, loss=round(loss, 6), lr=self.scheduler.get_last_lr()[0],
                             tokens_per_s=round(window_tokens / max(elapsed, 1e-9), 1),
                             grad_norm=round(float(self.grad_norm), 6))
                bar.set_postfix(loss=f"{loss:.4f}", lr=f"{entry['lr']:.2e}", tok_s=f"{entry['tokens_per_s']:.0f}")
                self._record(entry)
                window_tokens, window_start = 0, time.perf_counter()
            if self.step % cfg.eval_every == 0 or self.step == cfg.steps:
                self.last_eval = last_eval = self.evaluate()
                if last_eval:
                    self._record(dict(step=self.step, **{k: round(v, 6) for k, v in last_eval.items()}))
                    bar.write("step {}: {}".format(self.step, ", ".join(f"{k} {v:.4f}" for k, v in last_eval.items())))
            if self.step % cfg.save_every == 0 or self.step == cfg.steps:
                self.save_checkpoint()
            if self.world_size > 1:
                dist.barrier()
            if self.step % cfg.eval_every == 0 or self.step % cfg.save_every == 0:
                window_start = time.perf_counter()  # tokens/s measures training, not evaluation or saving

    def write_merged(self, folder: Path):
        """The base model with the adapter folded in, as a plain checkpoint (the run's own model stops being a
        LoRA model: call this once training is over)."""
        merge_lora(self.model)
        self.model.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        self._log(f"wrote the merged model to {folder}")

    def train_step(self) -> tuple[float, int]:
        """One optimizer step on one global batch; returns (mean loss over its target tokens, tokens seen)."""
        cfg = self.cfg
        batch = next(self.sampler)
        mine = D.shard(batch.indices, self.rank, self.world_size)
        examples = D.fetch(self.train_set, mine, batch.epoch)
        counts = torch.tensor([sum(len(labels) for _, labels in examples),
                               sum(len(src) + len(labels) for src, labels in examples)], dtype=torch.float64)
        if self.world_size > 1:
            dist.all_reduce(counts)
        target_tokens, all_tokens = counts.tolist()
        scale = self.world_size / target_tokens  # DDP averages gradients over processes; undo that
        micro = np.array_split(np.arange(len(examples)), cfg.grad_accum)
        loss_sum = torch.zeros((), dtype=torch.float64)
        for j, rows in enumerate(micro):
            if len(rows) == 0:
                continue
            batch_tensors = {k: v.to(self.device) for k, v in
                             D.collate([examples[r] for r in rows], self.tokenizer.pad_id).items()}
            last = j == len(micro) - 1
            sync = self.wrapped.no_sync() if (self.world_size > 1 and not last) else contextlib.nullcontext()
            with sync:
                with self._autocast():
                    loss = summed_loss(self.wrapped, batch_tensors)
                (loss * scale).backward()
            loss_sum += loss.detach().double().cpu()
        if self.world_size > 1:
            dist.all_reduce(loss_sum)
        # The norm before clipping, logged as grad_norm (the value clip_grad_norm_ returns).
        trainable = [p for p in self.model.parameters() if p.grad is not None]
        if cfg.clip > 0:
            self.grad_norm = torch.nn.utils.clip_grad_norm_(trainable, cfg.clip)
        else:
            self.grad_norm = torch.nn.utils.get_total_norm([p.grad for p in trainable])
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss_sum.item() / target_tokens, int(all_tokens)


class _Subset:
    """Some of a SpanCorruptionDataset's chunks, keeping its example(index, epoch) interface."""

    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, list(indices)

    def __len__(self):
        return len(self.indices)

    def example(self, index, epoch):
        return self.dataset.example(self.indices[index], epoch)

    def lengths(self):
        lengths = self.dataset.lengths()
        return [lengths[i] for i in self.indices]


def read_metrics(path: Path) -> list[dict]:
    """The rows of metrics.jsonl; a last line without its newline (being written right now) is left out."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.split("\n")[:-1] if line.strip()]


def keep_metrics_up_to(path: Path, step: int):
    """After a resume from `step`: drop the rows logged past it by the interrupted run (they are redone)."""
    if path.exists():
        rows = [row for row in read_metrics(path) if row["step"] <= step]
        atomic_write(path, lambda tmp: tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8"))


def plot_metrics(out: Path):
    """loss.png from metrics.jsonl, when matplotlib is installed (an optional dependency)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    rows = read_metrics(out / "metrics.jsonl")
    # one point per step (the latest row wins), in step order, even in a log a resume has repeated steps in
    train = sorted({r["step"]: r["loss"] for r in rows if "loss" in r}.items())
    evals = sorted({r["step"]: r["eval_loss"] for r in rows if "eval_loss" in r}.items())
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if train:
        ax.plot(*zip(*train), label="training loss")
    if evals:
        ax.plot(*zip(*evals), "o-", label="held-out loss")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy per target token")
    ax.set_yscale("log")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "loss.png", dpi=120)
    plt.close(fig)
