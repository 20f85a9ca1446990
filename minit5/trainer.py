"""The trainer: T5's span-corruption pretraining, text-to-text fine-tuning, and the built-in demo.

    settings ─► checks (before any work) ─► model + tokenizer ─► data ─► loop:
        global batch (BatchSampler) ─► this process's share ─► micro-batches ─► forward/backward
        ─► clip, optimizer step, schedule ─► log / evaluate / checkpoint

One step uses one global batch of `batch_size` examples, whatever the number of processes (torchrun) and of
gradient-accumulation micro-batches: the loss is summed over every target token of the global batch and divided
by their total count, so the gradient is the same token-level mean Hugging Face computes for one big batch.

Read it top to bottom: Trainer.__init__ builds everything in order, Trainer.train runs the loop, Trainer.train_step
is one optimizer step. Two places decide how processes share the work: Trainer.wrap_model (the model as the step
calls it: a full copy in each process under DistributedDataParallel, or sharded with --fsdp, minit5/sharding.py)
and Trainer.save_checkpoint (the state a checkpoint holds). `--resume` continues bit for bit (weights,
optimizer, schedule, data position and every random number generator). A LoRA run (--lora-r) keeps the base
(--init) frozen and trains and saves only the adapter; --merge-lora adds merged/, a full model.

The rest lives beside it: the settings, their --help and --resume rules, and the checks before any work in
minit5/train_config.py; the run folder (--out: run.json, checkpoints and `latest`, atomic saves, metrics.jsonl,
loss.png) in minit5/run_folder.py; the command line (python train.py, minit5-train) in minit5/train_cli.py.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import random
import re
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from . import data as D
from . import demo
from . import evaluate as E
from . import sharding
from .checkpoint import CheckpointError, resolve_path
from .config import ConfigError, T5Config
from .flops import cpu_flags, matmul_peak, native_bf16, training_flops
from .lora import AdapterError, add_lora, load_adapter, merge_lora, save_adapter, trainable_summary
from .model import T5, Attention
from .run_folder import RunFolder, check_out_dir, checkpoint_step, latest_checkpoint
from .tokenizer import Tokenizer, TokenizerError
# (TrainConfig and TrainError are imported from here too: from minit5.trainer import TrainConfig, Trainer)
from .train_config import (TrainConfig, TrainError, check_settings, data_format_of, filled_in, flag,
                           lora_target_list, named_config, recorded_settings)


EXPECT_AFTER = 20  # steps timed before the run says how long the rest will take

class Trainer:
    """One training run: __init__ checks the settings and builds everything (or finds the run already done);
    train() runs the steps. Trainer(TrainConfig(...)).train() is what train.py does."""

    def __init__(self, cfg: TrainConfig, log=print):
        self.cfg, self.log = cfg, log
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))  # set by torchrun
        self.rank = int(os.environ.get("RANK", "0"))
        self.is_main = self.rank == 0  # rank 0 alone logs, evaluates and writes the run folder
        check_settings(cfg, self.world_size, torchrun="RANK" in os.environ)
        cfg = self.cfg = filled_in(cfg)
        self.device = self.join_processes()
        # the tokenizer and the model config first: cheap, and enough to check the run folder
        self.tokenizer, model_config = self.read_tokenizer_and_config()
        self.run_info = dict(settings=recorded_settings(cfg), model_config=model_config.to_dict())  # run.json
        self.run = RunFolder(cfg.out)
        self.mode = self.decide_mode()  # "fresh", "resume", or "done" (nothing left to do)
        if self.mode == "done":
            return

        self.train_set, self.eval_set, self.eval_pairs, self.eval_groups = self.load_data()
        seed_everything(cfg.seed)
        checkpoint = latest_checkpoint(self.run.path) if self.mode == "resume" else None
        self.model = self.build_model(model_config, checkpoint)
        self.wrapped = self.wrap_model(self.model)  # what the training step calls
        self.optimizer = make_optimizer(cfg, self.model)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(s, cfg))
        lengths = D.example_lengths(self.train_set) if cfg.group_by_length else None
        try:
            self.sampler = D.BatchSampler(len(self.train_set), cfg.batch_size, cfg.seed, lengths=lengths)
        except D.DataError as e:
            raise TrainError(str(e)) from None
        self.step, self.last_eval = 0, {}
        self.grad_norm = torch.zeros(())  # of the last step, before clipping
        if checkpoint is not None:
            self.load_trainer_state(checkpoint)

    # -- setting up ---------------------------------------------------------------------------------
    def join_processes(self) -> torch.device:
        """Under torchrun, join the process group (gloo on CPU, nccl on CUDA); each process takes its own GPU."""
        cfg = self.cfg
        self.joined_group = (self.world_size > 1 or cfg.fsdp) and not dist.is_initialized()
        if self.joined_group:
            dist.init_process_group("nccl" if cfg.device.startswith("cuda") else "gloo")
        if cfg.device.startswith("cuda") and dist.is_initialized():
            cfg.device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
            torch.cuda.set_device(cfg.device)  # nccl's collectives run on the current device
        return torch.device(cfg.device)

    def read_tokenizer_and_config(self) -> tuple[Tokenizer, T5Config]:
        cfg = self.cfg
        try:
            if cfg.init:
                tokenizer = Tokenizer.from_pretrained(cfg.init)
                model_config = T5Config.from_json_file(resolve_path(cfg.init, what="--init") / "config.json")
            else:
                tokenizer = Tokenizer.from_pretrained(cfg.tokenizer) if cfg.tokenizer else Tokenizer.byte_level()
                model_config = named_config(cfg.config, tokenizer.vocab_size)
        except (CheckpointError, TokenizerError, ConfigError) as e:
            raise TrainError(str(e)) from None
        if cfg.dropout is not None:
            model_config.dropout_rate = cfg.dropout
        if tokenizer.vocab_size > model_config.vocab_size:
            raise TrainError(f"the tokenizer has {tokenizer.vocab_size} ids but the model only "
                             f"{model_config.vocab_size} embedding rows")
        return tokenizer, model_config

    def decide_mode(self) -> str:
        """Rank 0 compares --out with this run (minit5/run_folder.py check_out_dir); every process follows."""
        decision = [check_out_dir(self.cfg, self.run_info) if self.is_main else None]
        if self.world_size > 1:
            dist.broadcast_object_list(decision, src=0)
        return decision[0]

    def load_data(self):
        """(training set, held-out examples or None, their text pairs or None, their demo languages or None)."""
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
                train = D.Subset(full, range(held_out, len(full)))  # the first chunks are held out, corrupted once
                evaluation = D.fetch(full, range(held_out), epoch=0) if held_out else None
                notes.append(f"span corruption: {len(full)} chunks of {full.raw_length} tokens "
                             f"({held_out} held out for evaluation)")
        except D.DataError as e:  # minit5.data names Python arguments; here they are command-line flags
            raise TrainError(re.sub(r"\b(max_input_length|max_target_length|inputs_length)\b",
                                    lambda m: flag(m.group(1)), str(e))) from None
        if eval_pairs is not None and evaluation is not None:
            limit = min(len(evaluation), cfg.eval_examples)
            evaluation, eval_pairs = evaluation[:limit], eval_pairs[:limit]
            groups = groups[:limit] if groups else None
        for note in notes:
            self._log(note)
        return train, evaluation, eval_pairs, groups

    def build_model(self, model_config: T5Config, checkpoint: Path | None) -> T5:
        """The model to train, on its device: the checkpoint's on --resume, else --init's weights, else a fresh
        one; with --lora-r, its adapter added (or reloaded: a LoRA checkpoint holds only the adapter, and the
        base comes from --init again)."""
        cfg = self.cfg
        if checkpoint is not None and not cfg.lora_r:
            model = T5.from_pretrained(checkpoint, device=self.device)
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
                if checkpoint is not None:
                    load_adapter(model, checkpoint)
                else:
                    add_lora(model, r=cfg.lora_r, alpha=cfg.lora_alpha, targets=lora_target_list(cfg),
                             dropout=cfg.lora_dropout)
            except AdapterError as e:
                raise TrainError(str(e)) from None
        model.train()
        model.set_gradient_checkpointing(cfg.gradient_checkpointing)
        return model

    def wrap_model(self, model: T5):
        """The model as the training step calls it: itself in one process; under torchrun, in
        DistributedDataParallel, which averages the gradients over the processes during backward; with --fsdp,
        sharded over the processes in place (minit5/sharding.py: the same object, its weights now shards; the
        backward's reduce-scatter averages as DDP does); --compile puts torch.compile on top. (unwrap gives the T5
        back.) The optimizer is made after this, from model's own parameters."""
        wrapped = model
        if self.cfg.fsdp:
            wrapped = sharding.shard_model(model, self.device, bf16=self.cfg.dtype == "bfloat16")
        elif self.world_size > 1:
            wrapped = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if self.cfg.compile:
            wrapped = torch.compile(wrapped)
        return wrapped

    # -- the loop -----------------------------------------------------------------------------------
    def train(self) -> dict:
        """Steps from self.step up to --steps, logging, evaluating and checkpointing on the way; returns the
        last evaluation's scores."""
        cfg = self.cfg
        if self.mode == "done":
            finished = checkpoint_step(latest_checkpoint(self.run.path))
            self._log(f"{cfg.out} already holds this run, finished at step {finished}: nothing left to do "
                      f"(--resume with a larger --steps continues it, --overwrite starts again)")
            return {}
        self.peak = matmul_peak(self.device)  # FLOP/s of one process here: what MFU divides by
        step_flops = self.mean_step_flops()
        self.run_info["work"] = dict(flops_per_step=step_flops, flops_to_do=step_flops * (cfg.steps - self.step),
                                     matmul_peak_flops_per_s=round(self.peak), processes=self.world_size)
        if self.is_main:  # the log may run past the checkpoint we resume from: those steps are done again
            self.run.start(self.run_info, resumed_at=self.step if self.mode == "resume" else None)
            self._log(f"model: {self.model.num_parameters():,} parameters · {self.world_size} process(es) · "
                      f"{cfg.batch_size} examples per step · {cfg.steps} steps · out: {self.run.path}")
            self._log(f"work: {step_flops / 1e9:.1f} GFLOP a step, {step_flops * (cfg.steps - self.step) / 1e12:.1f} "
                      f"TFLOP in all; this machine's fp32 matrix products: {self.peak / 1e9:.0f} GFLOP/s a process")
            if cfg.dtype == "bfloat16" and self.device.type == "cpu" and not native_bf16(cpu_flags()):
                self._log("warning: this CPU has no bf16 arithmetic (avx512_bf16 or amx_bf16), so --dtype bfloat16 "
                          "will train slower than float32 here")
            if cfg.lora_r:  # in peft's words, so the two can be compared
                self._log(f"LoRA r={cfg.lora_r} alpha={cfg.lora_alpha:g} on {cfg.lora_targets}: "
                          f"{trainable_summary(self.model)}")
        from tqdm import tqdm
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not self.is_main, dynamic_ncols=True, desc="train")
        try:
            self.run_steps(bar)
        finally:  # Ctrl-C too: the bar ends before train.py says what survived
            bar.close()
        if self.is_main:
            self.run.plot()
        if cfg.merge_lora:
            self.write_merged(self.run.path / "merged")
        return self.last_eval

    def run_steps(self, bar):
        cfg = self.cfg
        window_tokens, window_flops, window_start = 0, 0, time.perf_counter()  # since the last log line
        first, first_start = self.step, time.perf_counter()  # for the expected time, said once
        while self.step < cfg.steps:
            loss, step_tokens, step_flops = self.train_step()
            self.step += 1
            window_tokens, window_flops = window_tokens + step_tokens, window_flops + step_flops
            bar.update(1)
            last = self.step == cfg.steps
            if self.step == first + EXPECT_AFTER and not last and self.is_main:
                seconds = (time.perf_counter() - first_start) / EXPECT_AFTER * (cfg.steps - self.step)
                bar.write(f"expected: about {minutes_and_seconds(seconds)} for the other "
                          f"{cfg.steps - self.step} steps on this machine (evaluations and checkpoints not counted)")
            if self.step % cfg.log_every == 0 or last:
                seconds = max(time.perf_counter() - window_start, 1e-9)
                self.log_step(bar, loss, window_tokens / seconds, window_flops / seconds)
                window_tokens, window_flops, window_start = 0, 0, time.perf_counter()
            if self.step % cfg.eval_every == 0 or last:
                self.last_eval = self.evaluate()
                self.log_evaluation(bar)
            if self.step % cfg.save_every == 0 or last:
                self.save_checkpoint()
            if self.world_size > 1:
                dist.barrier()
            if self.step % cfg.eval_every == 0 or self.step % cfg.save_every == 0:
                window_start = time.perf_counter()  # tokens/s measures training, not evaluation or saving

    def train_step(self) -> tuple[float, int, int]:
        """One optimizer step on one global batch; returns (mean loss over its target tokens, tokens seen, the
        FLOPs of its matrix products over every process)."""
        cfg = self.cfg
        batch = next(self.sampler)
        mine = D.shard(batch.indices, self.rank, self.world_size)
        examples = D.fetch(self.train_set, mine, batch.epoch)
        counts = torch.tensor([sum(len(labels) for _, labels in examples),
                               sum(len(src) + len(labels) for src, labels in examples),
                               self.example_flops(examples)], dtype=torch.float64)
        if self.world_size > 1:
            dist.all_reduce(counts)
        target_tokens, all_tokens, step_flops = counts.tolist()
        scale = self.world_size / target_tokens  # DDP and FSDP average gradients over processes; undo that
        micro = np.array_split(np.arange(len(examples)), cfg.grad_accum)
        loss_sum = torch.zeros((), dtype=torch.float64)
        for j, rows in enumerate(micro):
            if len(rows) == 0:
                continue
            batch_tensors = {k: v.to(self.device) for k, v in self.collate([examples[r] for r in rows]).items()}
            last = j == len(micro) - 1
            # DDP sums the gradients over processes once, after the last micro-batch. (FSDP reduce-scatters after
            # each: holding whole gradients until the last one would cost the memory sharding saves.)
            ddp = self.world_size > 1 and not self.cfg.fsdp
            sync = self.wrapped.no_sync() if (ddp and not last) else contextlib.nullcontext()
            with sync:
                with self._autocast():
                    loss = summed_loss(self.wrapped, batch_tensors)
                (loss * scale).backward()
            loss_sum += loss.detach().double().cpu()
        if self.world_size > 1:
            dist.all_reduce(loss_sum)
        # The norm before clipping, logged as grad_norm (the value clip_grad_norm_ returns).
        trainable = [p for p in self.model.parameters() if p.grad is not None]
        if cfg.clip > 0:  # under FSDP, the norm over every process's shards
            self.grad_norm = torch.nn.utils.clip_grad_norm_(trainable, cfg.clip)
        else:
            self.grad_norm = torch.nn.utils.get_total_norm([p.grad for p in trainable])
        if cfg.fsdp:  # the norm is a DTensor, replicated over the processes
            self.grad_norm = sharding.plain(self.grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss_sum.item() / target_tokens, int(all_tokens), int(step_flops)

    def collate(self, examples) -> dict[str, torch.Tensor]:
        """A micro-batch's tensors: packed rows for text-to-text pairs (--pack); span-corruption examples all
        have one length, so there is nothing to pack."""
        if self.cfg.pack and self.cfg.task != "span-corruption":
            return D.collate_packed(examples, self.tokenizer.pad_id)
        return D.collate(examples, self.tokenizer.pad_id)

    # -- how much work, how well the machine is used (minit5/flops.py) -------------------------------
    def example_flops(self, examples) -> int:
        """The FLOPs of a training step on these examples: real lengths, padding not counted; with LoRA the base
        weights take no gradient, so the backward costs one forward less."""
        return training_flops(self.model.config, [len(src) for src, _ in examples],
                              [len(labels) for _, labels in examples], trains_weights=not self.cfg.lora_r)

    def mean_step_flops(self, sample: int = 256) -> int:
        """A step's FLOPs on average, from evenly spaced training examples (no random numbers are drawn)."""
        n = len(self.train_set)
        indices = sorted({round(i * (n - 1) / max(sample - 1, 1)) for i in range(min(sample, n))})
        examples = D.fetch(self.train_set, indices, 0)
        return round(self.example_flops(examples) / len(examples) * self.cfg.batch_size)

    def _autocast(self):
        """--dtype bfloat16: autocast, except under --fsdp, where FSDP's mixed precision casts the gathered weights."""
        enabled = self.cfg.dtype == "bfloat16" and not self.cfg.fsdp
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    # -- logging ------------------------------------------------------------------------------------
    def log_step(self, bar, loss: float, tokens_per_s: float, flops_per_s: float):
        """One training line of metrics.jsonl, and the progress bar's figures. MFU: the FLOP/s of the step's
        matrix products over the machine's (every process's matmul peak together)."""
        mfu = flops_per_s / (self.peak * self.world_size)
        entry = dict(step=self.step, loss=round(loss, 6), lr=self.scheduler.get_last_lr()[0],
                     tokens_per_s=round(tokens_per_s, 1), grad_norm=round(float(self.grad_norm), 6),
                     gflops_per_s=round(flops_per_s / 1e9, 2), mfu=round(mfu, 4))
        bar.set_postfix(loss=f"{loss:.4f}", lr=f"{entry['lr']:.2e}", tok_s=f"{entry['tokens_per_s']:.0f}",
                        mfu=f"{100 * mfu:.0f}%")
        self._record(entry)

    def log_evaluation(self, bar):
        if self.last_eval and self.is_main:
            self._record(dict(step=self.step, **{k: round(v, 6) for k, v in self.last_eval.items()}))
            bar.write("step {}: {}".format(self.step, ", ".join(f"{k} {v:.4f}" for k, v in self.last_eval.items())))

    def _log(self, message: str):
        if self.is_main:
            self.log(message)

    def _record(self, entry: dict):
        if self.is_main:
            self.run.record(entry)

    # -- evaluation ---------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> dict:
        """Held-out loss and, for text-to-text data, exact match of greedy answers; for the demo, exact match per
        language too (exact_match_en, exact_match_zh). Rank 0 alone evaluates, except under FSDP, where each forward
        gathers weights from every process: there every process evaluates the same examples, and rank 0 reports."""
        if self.eval_set is None or not (self.is_main or self.cfg.fsdp):
            return {}
        model = self.model
        was_training = model.training
        model.eval()
        total, tokens, predictions = 0.0, 0, []
        examples = self.eval_set  # a list of (input_ids, labels)
        for start in range(0, len(examples), 64):
            chunk = examples[start:start + 64]
            # one example a row: generate answers these same rows below
            batch = {k: v.to(self.device) for k, v in D.collate(chunk, self.tokenizer.pad_id).items()}
            with self._autocast():
                total += summed_loss(model, batch).item()
            tokens += int((batch["labels"] != -100).sum())
            if self.eval_pairs is not None:
                longest = max(len(labels) for _, labels in chunk)
                # (under FSDP, the readable step: the fast ones read decoder weights outside forward, unsharded)
                out = model.generate(batch["input_ids"], batch["attention_mask"], max_new_tokens=longest,
                                     step="readable" if self.cfg.fsdp else "fast")
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

    # -- checkpoints --------------------------------------------------------------------------------
    def save_checkpoint(self):
        """A resumable checkpoint of this step: the state to save is produced here, and minit5/run_folder.py
        writes it atomically. Every process calls this. Without --fsdp, rank 0 alone writes (DDP's copies are
        equal); with it, every process first writes its shards into sharded/ (minit5/sharding.py), then rank 0
        writes the model files from the gathered weights, the same files a single process writes."""
        folder = self.run.temporary_checkpoint(self.step)
        if self.is_main:
            self.run.new_checkpoint(self.step)
        self._wait_for_all()  # the folder exists before anyone writes into it
        model = self.model
        if self.cfg.fsdp:
            sharding.save_sharded(folder / "sharded", self.model, self.optimizer, adapter_only=bool(self.cfg.lora_r))
            model = sharding.gathered_model(self.model, adapter_only=bool(self.cfg.lora_r))  # None outside rank 0
        state = self.trainer_state()
        if self.is_main:
            if self.cfg.lora_r:  # only what changes: the adapter (the base is --init, unchanged)
                save_adapter(model, folder, base_model_name_or_path=self.cfg.init)
            else:
                model.save_pretrained(folder)
                self.tokenizer.save_pretrained(folder)
            torch.save(state, folder / "trainer_state.pt")
        del model
        self._wait_for_all()  # every shard is on disk before the checkpoint is committed
        if self.is_main:
            self.run.commit_checkpoint(folder, keep=self.cfg.keep_checkpoints)

    def trainer_state(self) -> dict:
        """Everything --resume needs besides the weights (and, under FSDP, besides the optimizer state, which is
        sharded too). The random number generators of every process: each draws its own dropout masks."""
        state = dict(step=self.step, scheduler=self.scheduler.state_dict(), sampler=self.sampler.state_dict(),
                     rng=self.every_process(rng_state()), world_size=self.world_size)
        if not self.cfg.fsdp:
            state["optimizer"] = self.optimizer.state_dict()
        return state

    def load_trainer_state(self, folder: Path):
        state = torch.load(folder / "trainer_state.pt", weights_only=True, map_location="cpu")
        self.step = state["step"]
        if self.cfg.fsdp:
            sharding.load_sharded(folder / "sharded", self.model, self.optimizer, adapter_only=bool(self.cfg.lora_r))
        else:
            self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        try:
            self.sampler.load_state_dict(state["sampler"])
        except D.DataError as e:
            raise TrainError(f"--resume: {e}") from None
        rng = state["rng"] if isinstance(state["rng"], list) else [state["rng"]]  # older checkpoints: rank 0's
        set_rng_state(rng[self.rank] if len(rng) == self.world_size else rng[0])
        self._log(f"resumed from {folder} at step {self.step}")
        saved_world = state.get("world_size", 1)
        if saved_world != self.world_size:
            self._log(f"the run was on {saved_world} process(es), now {self.world_size}: the same global batches, "
                      f"weights and optimizer state, but sums over processes come in another order (and dropout "
                      f"masks differ), so the steps agree with an unbroken run to rounding, not bit for bit")

    def write_merged(self, folder: Path):
        """The base model with the adapter folded in, as a plain checkpoint (the run's own model stops being a
        LoRA model: call this once training is over). Every process calls it; rank 0 writes."""
        model = sharding.gathered_model(self.model) if self.cfg.fsdp else self.model
        if not self.is_main:
            return
        merge_lora(model)
        model.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        self._log(f"wrote the merged model to {folder}")

    # -- processes ----------------------------------------------------------------------------------
    def every_process(self, value) -> list:
        """[value of rank 0, value of rank 1, ...], on every process."""
        if self.world_size == 1:
            return [value]
        values = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values

    def _wait_for_all(self):
        if dist.is_initialized():
            dist.barrier()

    def close(self):
        """Leave the process group this trainer joined, once every process is here. Without it, the group's
        threads are torn down while Python exits, which can abort a process (gloo: "terminate called without an
        active exception"). DistributedDataParallel holds the group, so it is dropped first."""
        if not self.joined_group or not dist.is_initialized():
            return
        dist.barrier()
        self.wrapped = self.model
        gc.collect()
        dist.destroy_process_group()


# --------------------------------------------------------------------------------------------------
# Pieces the loop uses: optimizer groups, schedules, the loss, random number generators
# --------------------------------------------------------------------------------------------------
def minutes_and_seconds(seconds: float) -> str:
    """159.4 -> "2 min 39 s"."""
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds} s"


def parameter_groups(model: T5, weight_decay: float, lr: float, position_bias_lr_scale: float = 1.0):
    """Weight decay on the matrices; none on norm weights and position-bias tables (scales and offsets). With a
    position_bias_lr_scale other than 1 the tables are a third group, at that multiple of lr."""
    decay, no_decay, position_biases = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:  # frozen (the base model under a LoRA adapter): not in the optimizer at all
            continue
        table = "position_bias" in name
        if table and position_bias_lr_scale != 1:
            position_biases.append(p)
        elif table or p.dim() < 2:
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [dict(params=decay, weight_decay=weight_decay), dict(params=no_decay, weight_decay=0.0)]
    if position_biases:  # the scheduler multiplies each group's own lr, so the ratio holds all run long
        groups.append(dict(params=position_biases, weight_decay=0.0, lr=lr * position_bias_lr_scale))
    return groups


def make_optimizer(cfg: TrainConfig, model: T5):
    groups = parameter_groups(model, cfg.weight_decay, cfg.lr, cfg.position_bias_lr_scale)
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
    """Sum (not mean) of the batch's token cross-entropies; the caller divides by the global token count.
    A batch with decoder_attention_mask holds packed rows (data.collate_packed)."""
    examples = batch.get("decoder_attention_mask")  # (B, T) example numbers, or None
    decoder_input_ids = unwrap(model).shift_right(batch["labels"], examples)
    packed = dict(decoder_attention_mask=examples, packed=True) if examples is not None else {}
    logits, _ = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                      decoder_input_ids=decoder_input_ids, **packed)
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


def seed_everything(seed: int):
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


def set_rng_state(state: dict):
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
