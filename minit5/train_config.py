"""What a training run is asked to do: every setting once, with its --help text and its --resume rule, and the
checks that refuse impossible settings before any work starts.

Each field of TrainConfig is one command-line flag (`lora_r` is `--lora-r`; minit5/train_cli.py builds the parser
from these fields) and one key of the run's record, run.json. Its `resume` rule says what `--resume` does with it:

    IDENTITY     says which run a folder holds (what it trains on, where it starts): another value is another run
    SAME         shapes the arithmetic of the training steps: an exact resume needs the value the run started with
    MAY_CHANGE   does not touch that arithmetic (--steps moves the end of the schedule, which is what asking for
                 more steps means), so it may differ on --resume
    FOLDER       names the run folder, or what to do with what is in it
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import ConfigError, T5Config
from .lora import AdapterError, check_lora_options

TASKS = ("demo", "seq2seq", "span-corruption")
OPTIMIZERS = ("adamw", "adafactor")
SCHEDULES = ("constant", "inverse-sqrt", "cosine", "linear")
# A fresh model's position-bias tables start near 0 (std d_model^-0.5) and must grow to offsets of several units
# before attention can pick a byte by its position; Adam moves each entry by about --lr a step, which at 1e-3 takes
# thousands of steps. At 30x the demo learns in 600 steps what 2,000 did not always reach (docs/training.md §6).
FRESH_POSITION_BIAS_LR_SCALE = 30.0
IDENTITY, SAME, MAY_CHANGE, FOLDER = "identity", "same", "may change", "folder"


def setting(default, help: str, *, resume: str = SAME, path: bool = False, recorded: bool = True):
    """A TrainConfig field with its --help text and its --resume rule. path: compared resolved (out/a and
    ./out/a/ are the same file); recorded=False: how this command runs, left out of run.json."""
    metadata = dict(help=help, resume=resume, path=path, recorded=recorded)
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    task: str = setting("demo", f"what to train on: {', '.join(TASKS)}", resume=IDENTITY)
    data: str | None = setting(None, "seq2seq training pairs: .jsonl with input/target fields, or .tsv",
                               resume=IDENTITY, path=True)
    data_format: str | None = setting(None, "jsonl or tsv, for --data/--eval-data files whose name ends otherwise")
    eval_data: str | None = setting(None, "seq2seq held-out pairs (same formats)", resume=MAY_CHANGE, path=True)
    text: list[str] = setting([], "span-corruption text files (one document per line)", resume=IDENTITY, path=True)
    one_document_per_file: bool = setting(False, "span-corruption: a file is one document (default: a line is)")
    init: str | None = setting(None, "start from pretrained weights and their tokenizer (folder or hub id)",
                               resume=IDENTITY, path=True)
    config: str = setting("tiny", "without --init, a fresh model of this shape: tiny, small, base, large, xl, xxl, "
                          "or a config.json (on the byte-level vocabulary unless --tokenizer is given)",
                          resume=IDENTITY, path=True)
    tokenizer: str | None = setting(None, "without --init, a tokenizer folder (tokenizer.json or spiece.model) for "
                                    "the fresh model", resume=IDENTITY, path=True)
    out: str = setting("out/demo", "run folder: checkpoints, the latest model, metrics", resume=FOLDER)
    resume: bool = setting(False, "continue the run in --out where it stopped", resume=FOLDER, recorded=False)
    overwrite: bool = setting(False, "replace the run in --out and start again", resume=FOLDER, recorded=False)
    steps: int = setting(600, "optimizer steps in all", resume=MAY_CHANGE, recorded=False)
    batch_size: int = setting(64, "examples per optimizer step, over all processes and micro-batches")
    grad_accum: int = setting(1, "micro-batches per step (each process)")
    lr: float = setting(1e-3, "learning rate, at the end of the warmup")
    optimizer: str = setting("adamw", f"{', '.join(OPTIMIZERS)}")
    beta2: float = setting(0.98, "AdamW's second-moment decay (0.98 rather than 0.999: steadier at a high --lr)")
    schedule: str = setting("cosine", f"{', '.join(SCHEDULES)} (after --warmup steps of linear warmup)")
    warmup: int = setting(200, "steps of linear warmup")
    weight_decay: float = setting(0.01, "weight decay on the matrices (not on norms and position biases)")
    position_bias_lr_scale: float | None = setting(
        None, f"the relative-position-bias tables learn at this multiple of --lr (default: "
              f"{FRESH_POSITION_BIAS_LR_SCALE:g} for a fresh model, 1 with --init)")
    clip: float = setting(1.0, "max gradient norm (0 = off)")
    dropout: float | None = setting(None, "override the model's dropout rate")
    dtype: str = setting("float32", "float32, or bfloat16 autocast")
    gradient_checkpointing: bool = setting(False, "recompute each block's activations in the backward pass")
    fsdp: bool = setting(False, "under torchrun, shard the weights, gradients and optimizer state over the processes "
                         "(FSDP2) instead of a whole copy in each (DDP); see docs/training.md")
    compile: bool = setting(False, "wrap the model in torch.compile", resume=MAY_CHANGE, recorded=False)
    device: str = setting("cpu", "cpu, cuda or cuda:N", resume=MAY_CHANGE, recorded=False)
    seed: int = setting(0, "seeds the fresh model, the batch order and the span corruption")
    max_input_length: int = setting(512, "longer inputs are truncated (keeping the EOS)")
    max_target_length: int = setting(128, "longer targets are truncated (keeping the EOS)")
    inputs_length: int = setting(512, "span-corruption: encoder tokens per example")
    group_by_length: bool = setting(False, "batch examples of similar length together (less padding)")
    pack: bool = setting(True, "text-to-text pairs: several short examples share a row, each seeing only itself, so "
                               "that less padding is computed (the same loss); --no-pack pads each to the longest",
                         resume=MAY_CHANGE)
    eval_every: int = setting(200, "evaluate every N steps (and at the end)", resume=MAY_CHANGE, recorded=False)
    eval_examples: int = setting(500, "held-out examples per evaluation", resume=MAY_CHANGE)
    save_every: int = setting(500, "checkpoint every N steps (and at the end)", resume=MAY_CHANGE, recorded=False)
    log_every: int = setting(10, "log every N steps to metrics.jsonl", resume=MAY_CHANGE, recorded=False)
    keep_checkpoints: int = setting(2, "how many of the newest checkpoints to keep", resume=MAY_CHANGE,
                                    recorded=False)
    lora_r: int = setting(0, "train a LoRA adapter of this rank on the frozen --init model (0: full fine-tuning)")
    lora_alpha: float = setting(16.0, "LoRA scale: the update is multiplied by lora_alpha / lora_r")
    lora_dropout: float = setting(0.0, "dropout on the LoRA adapter's input")
    lora_targets: str = setting("q,v", "layers to adapt, Hugging Face names: q,k,v,o,wi_0,wi_1,wi,wo, or all-linear")
    merge_lora: bool = setting(False, "at the end, also write the base with the adapter merged in to --out/merged")


class TrainError(ValueError):
    """Settings or files that make training impossible; raised before any training starts."""


def settings_where(rule) -> tuple[str, ...]:
    """The names of the settings whose metadata passes `rule`, in TrainConfig's order."""
    return tuple(f.name for f in dataclasses.fields(TrainConfig) if rule(f.metadata))


RUN_IDENTITY = settings_where(lambda m: m["resume"] == IDENTITY)
RESUME_MAY_CHANGE = settings_where(lambda m: m["resume"] in (MAY_CHANGE, FOLDER))  # not compared on --resume
PATH_SETTINGS = settings_where(lambda m: m["path"])


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


def recorded_settings(cfg: TrainConfig) -> dict:
    """The settings run.json keeps (paths resolved): what the run is, not how this command runs it."""
    recorded = settings_where(lambda m: m["recorded"])
    return {k: resolved(k, v) for k, v in dataclasses.asdict(cfg).items() if k in recorded}


def data_format_of(path: str, given: str | None) -> str | None:
    return given or {".jsonl": "jsonl", ".tsv": "tsv"}.get(Path(path).suffix.lower())


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


def lora_target_list(cfg: TrainConfig):
    """--lora-targets as add_lora takes it: a list of names, or the string "all-linear"."""
    if cfg.lora_targets.strip().lower() == "all-linear":
        return "all-linear"
    return [t.strip() for t in cfg.lora_targets.split(",") if t.strip()]


# --------------------------------------------------------------------------------------------------
# Checks that run before anything is loaded
# --------------------------------------------------------------------------------------------------
def need(ok: bool, message: str):
    if not ok:
        raise TrainError(message)


def filled_in(cfg: TrainConfig) -> TrainConfig:
    """cfg with the defaults that depend on other settings decided (what run.json records and --resume compares)."""
    if cfg.position_bias_lr_scale is None:  # a pretrained model's tables are already shaped: leave them at --lr
        cfg = dataclasses.replace(cfg, position_bias_lr_scale=1.0 if cfg.init else FRESH_POSITION_BIAS_LR_SCALE)
    return cfg


def check_settings(cfg: TrainConfig, world_size: int, torchrun: bool = False):
    """Every setting that cannot work, refused with one sentence before any file is read or model built.
    torchrun: this process was started by torchrun (it set RANK and WORLD_SIZE)."""
    check_numbers(cfg, world_size)
    check_sources(cfg)
    check_lora_settings(cfg)
    check_fsdp_settings(cfg, torchrun)


def check_numbers(cfg: TrainConfig, world_size: int):
    """The settings' values: ranges and choices."""
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
    need(cfg.position_bias_lr_scale is None or cfg.position_bias_lr_scale > 0,
         f"--position-bias-lr-scale must be a positive number, got {cfg.position_bias_lr_scale}")
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


def check_sources(cfg: TrainConfig):
    """What the run reads (data, weights, tokenizer) and where it writes: they fit the task and exist."""
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


def check_lora_settings(cfg: TrainConfig):
    """--lora-r 0 is full fine-tuning; a rank needs --init, and the adapter's options pass minit5.lora's check."""
    if cfg.lora_r == 0:
        need(not cfg.merge_lora, "--merge-lora merges a LoRA adapter; it needs --lora-r")
        return
    need(cfg.lora_r >= 1, f"--lora-r must be 0 (full fine-tuning) or a positive rank, got {cfg.lora_r}")
    need(cfg.init is not None, "--lora-r trains an adapter on pretrained weights: it needs --init BASE")
    try:
        check_lora_options(cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, lora_target_list(cfg))
    except AdapterError as e:  # minit5.lora names add_lora's arguments ("LoRA alpha"); here they are flags
        raise TrainError(re.sub(r"^LoRA (r|alpha|dropout|targets)\b", lambda m: flag("lora_" + m.group(1)),
                                str(e))) from None


def check_fsdp_settings(cfg: TrainConfig, torchrun: bool):
    """--fsdp shards over the processes torchrun starts, and not every optimizer updates shards."""
    if not cfg.fsdp:
        return
    need(torchrun, "--fsdp shards the model over the processes torchrun starts: run torchrun --nproc_per_node N "
                   "train.py --fsdp ... (N may be 1)")
    need(cfg.optimizer == "adamw", "--optimizer adafactor does not work with --fsdp (torch's Adafactor cannot "
                                   "update sharded weights: its row and column statistics span the shards); use adamw")
