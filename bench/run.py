"""minit5 against Hugging Face transformers, side by side, on the same random weights, threads and inputs.

    python bench/run.py                    flan-T5-small shape, 2 threads, everything (~8 minutes on 2 cores)
    python bench/run.py --size base        another shape
    python bench/run.py --only decode      some of: decode, batch, beam, encoder, train, memory, load, lora, decode-int8
    python bench/run.py --only lora        a LoRA step against a full fine-tuning step, minit5 beside peft
                                           (written to bench/results/lora-<size>-<device>.json)
    python bench/run.py --only decode-int8 int8 decoding against CTranslate2 (pip install -e ".[bench]")
    python bench/run.py --device cuda      on a GPU (bf16 and fp32)
    python bench/run.py --markdown bench/results/small-cpu.json     a results file as docs/performance.md's table

Each figure is the median of several timed repetitions after a warm-up, HF and minit5 run alternately. The result is the ratio minit5 / HF
(higher is better for speeds, lower for memory and time); absolute figures are context, as machines are noisy.
The table goes to stdout, everything to bench/results/<size>-<device>.json.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
if os.environ.get("ATEN_CPU_CAPABILITY") and "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
    # Imitating another CPU (docs/performance.md): torch.compile's on-disk cache does not tell programs built under
    # another ATEN_CPU_CAPABILITY apart, and loading one gave NaN logits and heap corruption (torch 2.13), so the
    # imitation compiles into a cache of its own.
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(tempfile.gettempdir(),
                                                         "torchinductor-" + os.environ["ATEN_CPU_CAPABILITY"])
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))  # bench/bandwidth.py, also when this file is imported (tests)

from minit5 import T5, T5Config  # noqa: E402
from minit5.checkpoint import write_json  # noqa: E402
from minit5.fast import prepare  # noqa: E402
from minit5.flops import cpu_flags, matmul_peak, native_bf16, training_flops  # noqa: E402
from bandwidth import read_bandwidth, step_bytes  # noqa: E402
from minit5.quant import quantize  # noqa: E402

SECTIONS = ("decode", "batch", "beam", "encoder", "train", "memory", "load", "decode-int8", "lora")
DEFAULT_SECTIONS = [s for s in SECTIONS if s != "lora"]  # lora (LoRA against full fine-tuning) only when asked


def release_memory() -> None:
    """Hand the memory of freed tensors back to the system. glibc keeps freed blocks below its mmap threshold (which
    rises to 32 MiB after the first large free) in its heap for reuse: after a few training steps of flan-T5-base
    this process holds gigabytes it no longer uses, enough to get a measuring process beside it killed for memory."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        pass


def median_time(fn, reps: int, warmup: int = 1, sync=lambda: None) -> float:
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def paired_median_times(fn_hf, fn_ours, reps: int, warmup: int = 1, sync=lambda: None) -> tuple[float, float]:
    """Median times of two functions run alternately (HF, minit5, HF, ...), so that a slow spell of a noisy
    machine hits both alike instead of whichever happened to run then."""
    for _ in range(warmup):
        fn_hf()
        fn_ours()
    sync()
    times = ([], [])
    for _ in range(reps):
        for fn, bucket in ((fn_hf, times[0]), (fn_ours, times[1])):
            start = time.perf_counter()
            fn()
            sync()
            bucket.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


class Bench:
    def __init__(self, args):
        self.args = args
        self.device = torch.device(args.device)
        self.sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)
        self.rows = []
        self.folder = Path(tempfile.mkdtemp(prefix="minit5-bench-"))
        from transformers import T5Config as HFConfig, T5ForConditionalGeneration
        self.HF = T5ForConditionalGeneration
        config = T5Config.flan_t5(args.size)
        torch.manual_seed(0)
        hf_config = HFConfig(vocab_size=config.vocab_size, d_model=config.d_model, d_ff=config.d_ff,
                             d_kv=config.d_kv, num_heads=config.num_heads, num_layers=config.num_layers,
                             feed_forward_proj="gated-gelu", decoder_start_token_id=0, tie_word_embeddings=False)
        hf = self.HF(hf_config)  # transformers' init, then an untied head as in flan-T5
        hf.lm_head.weight = torch.nn.Parameter(torch.randn_like(hf.lm_head.weight) * config.d_model ** -0.5)
        hf.save_pretrained(self.folder)
        raw = json.loads((self.folder / "config.json").read_text())
        raw.pop("scale_decoder_outputs", None)
        raw["tie_word_embeddings"] = False
        (self.folder / "config.json").write_text(json.dumps(raw))
        del hf
        self.config = config
        self.checkpoint_bytes = (self.folder / "model.safetensors").stat().st_size

    def models(self, dtype, attention="sdpa"):
        """Both models on the same weights. Inference: both use SDPA attention (transformers 5's default for T5).
        Training: minit5 uses its eager attention, as its trainer does (SDPA's backward falls back to the slow
        math kernel when the position bias needs a gradient)."""
        hf = self.HF.from_pretrained(self.folder, dtype=dtype).to(self.device).eval()
        ours = T5.from_pretrained(self.folder, dtype=dtype, device=self.device).set_attention(attention)
        return hf, ours

    def add(self, name, unit, hf_value, ours_value, higher_is_better=True, extra=None):
        ratio = ours_value / hf_value if higher_is_better else hf_value / ours_value
        row = dict(name=name, unit=unit, hf=hf_value, minit5=ours_value, ratio=ratio,
                   higher_is_better=higher_is_better, **(extra or {}))
        self.rows.append(row)
        note = "  " + ", ".join(f"{k} {v}" for k, v in (extra or {}).items()) if extra else ""
        print(f"{name:<44} {hf_value:>10.2f} {ours_value:>10.2f} {unit:<10} x{ratio:5.2f}{note}", flush=True)

    def prompts(self, batch, length, seed=0, mixed=False):
        g = torch.Generator().manual_seed(seed)
        ids = torch.randint(3, 32000, (batch, length), generator=g)
        mask = torch.ones(batch, length, dtype=torch.long)
        if mixed:  # right padding to lengths spread between length/4 and length
            for row in range(batch):
                keep = length // 4 + (row * (length - length // 4)) // max(batch - 1, 1)
                ids[row, keep:] = 0
                mask[row, keep:] = 0
        return ids.to(self.device), mask.to(self.device)

    # ---------------------------------------------------------------------------------- decoding
    def generate_pair(self, name, dtype, batch, prompt_len, new_tokens, num_beams, mixed=False, reps=3,
                      compile=False):
        """compile=True: minit5 runs its compiled step (minit5/compiled.py); the first, compiling call is the
        warm-up, its time goes to self.compile_s."""
        hf, ours = self.models(dtype)
        ids, mask = self.prompts(batch, prompt_len, mixed=mixed)
        # EOS is blocked (min_new_tokens = max_new_tokens) so both produce exactly new_tokens per row
        kw = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, num_beams=num_beams)
        with torch.no_grad():
            if compile:
                start = time.perf_counter()
                ours.generate(ids, mask, step="compiled", **kw)
                self.compile_s = time.perf_counter() - start
            t_hf, t_ours = paired_median_times(
                lambda: hf.generate(input_ids=ids, attention_mask=mask, do_sample=False, **kw),
                lambda: ours.generate(ids, mask, step="compiled" if compile else "fast", **kw), reps, sync=self.sync)
        steps = new_tokens * (batch if num_beams == 1 else 1)
        unit = "tokens/s" if num_beams == 1 else "steps/s"
        return hf, ours, steps / t_hf, steps / t_ours, unit

    def bound(self, ours, rows=1, reps=5):
        """The decode step's matrix products alone, with minit5's weights and kernels: the weight-streaming bound."""
        weights = prepare(ours)
        mats = [fused.weight for fused in weights.per_step()]
        xs = {m.shape[1]: torch.randn(rows, 1, m.shape[1], dtype=m.dtype, device=self.device) for m in mats}

        def products():
            for m in mats:
                F.linear(xs[m.shape[1]], m)
        with torch.no_grad():
            return 1.0 / median_time(lambda: [products() for _ in range(10)], reps, sync=self.sync) * 10

    def bandwidth_bound(self, model, steps_per_s) -> dict:
        """One row's steps/s against the memory's bound (bench/bandwidth.py): bytes a step streams / read speed."""
        if self.device.type != "cpu":
            return {}
        if not hasattr(self, "read_bandwidth"):
            self.read_bandwidth = read_bandwidth()  # measured once per run
        bound = self.read_bandwidth / step_bytes(prepare(model))
        return {"bandwidth_gib_s": round(self.read_bandwidth / 2**30, 1), "bandwidth_bound_steps_s": round(bound, 1),
                "of_bandwidth": round(steps_per_s / bound, 3)}

    def decode(self):
        for dtype in self.dtypes:
            for compile in (False, True):
                name = f"greedy batch 1, 64 new tokens, {str(dtype)[6:]}" + (", minit5 compiled" if compile else "")
                hf, ours, r_hf, r_ours, unit = self.generate_pair(name, dtype, 1, 24, 64, 1, reps=5 if compile else 3,
                                                                  compile=compile)
                bound = self.bound(ours)
                extra = {"bound_steps_s": round(bound, 1), "of_bound": round(r_ours / bound, 3),
                         **self.bandwidth_bound(ours, r_ours)}
                if compile:
                    extra["compile_s"] = round(self.compile_s, 1)
                self.add(name, unit, r_hf, r_ours, extra=extra)

    def batch(self):
        for dtype in self.dtypes:
            name = f"greedy batch 16 mixed prompts, 32 new, {str(dtype)[6:]}"
            _, _, r_hf, r_ours, unit = self.generate_pair(name, dtype, 16, 48, 32, 1, mixed=True)
            self.add(name, unit, r_hf, r_ours)

    def beam(self):
        for dtype in self.dtypes:
            for compile in (False, True):
                name = f"beam search 4 beams, batch 1, 32 steps, {str(dtype)[6:]}" + (", minit5 compiled" if compile else "")
                _, _, r_hf, r_ours, unit = self.generate_pair(name, dtype, 1, 24, 32, 4, compile=compile)
                self.add(name, unit, r_hf, r_ours, extra={"compile_s": round(self.compile_s, 1)} if compile else None)

    # ---------------------------------------------------------------------------------- int8 vs CTranslate2
    INT8_CASES = (("greedy batch 1, 64 new tokens", 1, 24, 64, 1, False),
                  ("beam search 4 beams, batch 1, 32 steps", 1, 24, 32, 4, False),
                  ("greedy batch 16 mixed prompts, 32 new", 16, 48, 32, 1, True))

    def ctranslate2_times(self, cases, reps) -> dict:
        """Median seconds of CTranslate2 (fp32 and int8) on each case, in a process of its own (bench/ctranslate2_worker.py).
        Same process as minit5 would be unfair to both: CTranslate2's OpenMP threads keep spinning for a while after
        each call (Intel OpenMP's KMP_BLOCKTIME), taking the cores from whatever runs next, and torch's threads do the
        same. The weights go through CTranslate2's own converter. It reads the vocabulary from a tokenizer, so the folder
        gets a word-level one whose token i is "t{i}": CTranslate2 takes token strings, and "t{id}" spells exactly
        the ids minit5 gets."""
        from tokenizers import Tokenizer as RawTokenizer, models
        from transformers import PreTrainedTokenizerFast
        if not (self.folder / "tokenizer.json").exists():
            specials = {"<pad>": 0, "</s>": 1, "<unk>": 2}
            vocab = {**specials, **{f"t{i}": i for i in range(3, self.config.vocab_size)}}
            PreTrainedTokenizerFast(tokenizer_object=RawTokenizer(models.WordLevel(vocab, unk_token="<unk>")),
                                    pad_token="<pad>", eos_token="</s>", unk_token="<unk>").save_pretrained(self.folder)
        out = subprocess.run([sys.executable, str(ROOT / "bench" / "ctranslate2_worker.py"),
                              json.dumps([str(self.folder), self.args.threads, reps, cases])],
                             capture_output=True, text=True, env={**os.environ, "TRANSFORMERS_VERBOSITY": "error"})
        if out.returncode != 0:
            raise RuntimeError(f"the CTranslate2 process failed:\n{out.stderr[-2000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    def decode_int8(self):
        """Greedy batch 1, beam 4 and greedy batch 16 (mixed prompt lengths): minit5 int8 against CTranslate2
        int8 (the ratio), with CTranslate2 fp32 and minit5 fp32 alongside. Same weights, threads, forced length."""
        if self.device.type != "cpu":
            return print("decode-int8: CPU only (minit5's int8 kernels and this comparison are for CPUs)")
        try:
            import ctranslate2  # noqa: F401
        except ImportError:
            return print("decode-int8: not run, ctranslate2 is not installed (pip install -e \".[bench]\")")
        reps = self.args.reps or 5
        inputs = {name: self.prompts(batch, length, mixed=mixed)
                  for name, batch, length, _, _, mixed in self.INT8_CASES}
        sources = {name: [[f"t{i}" for i in row[:int(m.sum())].tolist()] for row, m in zip(ids, mask)]
                   for name, (ids, mask) in inputs.items()}
        ct2 = self.ctranslate2_times([(name, sources[name], new, beams) for name, _, _, new, beams, _ in
                                      self.INT8_CASES], reps)
        models = {"fp32": T5.from_pretrained(self.folder).eval(),
                  "int8": quantize(T5.from_pretrained(self.folder).eval(), "int8")}
        for name, batch, _, new_tokens, beams, _ in self.INT8_CASES:
            ids, mask = inputs[name]
            kw = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, num_beams=beams)
            with torch.no_grad():
                ours = {k: median_time(lambda m=m: m.generate(ids, mask, **kw), reps) for k, m in models.items()}
            steps = new_tokens * (batch if beams == 1 else 1)
            unit = "tokens/s" if beams == 1 else "steps/s"
            self.add(f"{name}, int8: CTranslate2 vs minit5", unit, steps / ct2[f"int8 {name}"],
                     steps / ours["int8"],
                     extra={"baseline": "CTranslate2 int8",
                            "ctranslate2_fp32": round(steps / ct2[f"float32 {name}"], 1),
                            "minit5_fp32": round(steps / ours["fp32"], 1),
                            **(self.bandwidth_bound(models["int8"], steps / ours["int8"]) if batch == 1 and beams == 1
                               else {})})

    # ---------------------------------------------------------------------------------- encoder
    def encoder(self):
        for dtype in self.dtypes:
            hf, ours = self.models(dtype)
            ids, mask = self.prompts(8, 512)
            with torch.no_grad():
                t_hf, t_ours = paired_median_times(lambda: hf.get_encoder()(input_ids=ids, attention_mask=mask),
                                                   lambda: ours.encode(ids, mask), 5, sync=self.sync)
            self.add(f"encoder forward 8 x 512, {str(dtype)[6:]}", "tokens/s", 8 * 512 / t_hf, 8 * 512 / t_ours)

    # ---------------------------------------------------------------------------------- training
    TRAIN_BATCH = (8, 512, 114)  # sequences, input tokens, target tokens: a typical fine-tuning batch

    def training_batch(self):
        """(input_ids, attention_mask, labels) of TRAIN_BATCH, the same for both models."""
        batch, src, tgt = self.TRAIN_BATCH
        ids, mask = self.prompts(batch, src)
        labels = torch.randint(3, 32000, (batch, tgt), generator=torch.Generator().manual_seed(1)).to(self.device)
        return ids, mask, labels

    def training_steps(self, hf, ours, autocast: bool = False):
        """One training step of each model on training_batch(), as closures {"hf": step, "minit5": step}, and their
        optimizers: fused AdamW over the trainable parameters (transformers' Trainer default, adamw_torch_fused, and
        minit5's trainer's), bf16 autocast if asked. Used by the train and lora sections alike."""
        ids, mask, labels = self.training_batch()
        steps, optimizers = {}, {}
        for name, model, call in (
                ("hf", hf, lambda m: m(input_ids=ids, attention_mask=mask, labels=labels).loss),
                ("minit5", ours, lambda m: m(ids, attention_mask=mask, labels=labels)[1])):
            optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, fused=True)

            def step(model=model, call=call, optimizer=optimizer):
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=autocast):
                    loss = call(model)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            steps[name], optimizers[name] = step, optimizer
        return steps, optimizers

    def train(self):
        batch, src, tgt = self.TRAIN_BATCH
        peak = matmul_peak(self.device)  # the trainer's MFU divides by the same (minit5/flops.py)
        flops = training_flops(self.config, [src] * batch, [tgt] * batch)  # forward + backward, products only
        for autocast in ([False, True] if self.device.type == "cuda" or self.args.bf16_train or native_bf16(cpu_flags())
                         else [False]):
            hf, ours = self.models(torch.float32, attention="eager")
            steps, _ = self.training_steps(hf.train(), ours.train(), autocast)
            t_hf, t_ours = paired_median_times(steps["hf"], steps["minit5"], 5, sync=self.sync)
            tokens = batch * (src + tgt)
            label = "bf16 autocast" if autocast else "fp32"
            self.add(f"training step {batch} x ({src} + {tgt}), {label}", "tokens/s", tokens / t_hf, tokens / t_ours,
                     extra={"mfu_hf": round(flops / t_hf / peak, 3), "mfu_minit5": round(flops / t_ours / peak, 3),
                            "matmul_peak_gflops": round(peak / 1e9, 1)})

    # ---------------------------------------------------------------------------------- memory and loading
    def fresh_process(self, code: str, call: str) -> dict:
        """Run `code` (which defines run) in a fresh Python process and return the JSON of `call`."""
        release_memory()  # the measuring process and this one share the machine's memory
        script = textwrap.dedent(f"""
            import json, sys, time, torch
            sys.path.insert(0, {str(ROOT)!r})
            torch.set_num_threads({self.args.threads})
            def status_mib(field):  # kB in /proc -> MiB
                line = next(l for l in open('/proc/self/status') if l.startswith(field + ':'))
                return int(line.split()[1]) / 1024
            import minit5, transformers
            from transformers import T5ForConditionalGeneration
            from minit5 import T5
            folder = {str(self.folder)!r}
        """) + textwrap.dedent(code) + f"\nprint(json.dumps({call}))\n"
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             env={**os.environ, "TRANSFORMERS_VERBOSITY": "error", "HF_HUB_OFFLINE": "1"})
        if out.returncode != 0:
            raise RuntimeError(f"the measuring process failed:\n{out.stderr[-2000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    def memory(self):
        results = {which: self.training_peak_memory(which, lora=False) for which in ("hf", "minit5")}
        self.add("training step peak memory above the loaded model", "MiB", results["hf"], results["minit5"],
                 higher_is_better=False)
        load_code = """
            def run(which):
                before = status_mib('VmRSS')
                if which == "hf":
                    model = T5ForConditionalGeneration.from_pretrained(folder)
                else:
                    model = T5.from_pretrained(folder)
                return dict(peak=status_mib('VmHWM') - before)
        """
        results = {w: self.fresh_process(load_code, f"run({w!r})") for w in ("hf", "minit5")}
        size_mib = self.checkpoint_bytes / 2 ** 20
        self.add("checkpoint load peak memory (fp32)", "MiB", results["hf"]["peak"], results["minit5"]["peak"],
                 higher_is_better=False, extra={"checkpoint_mib": round(size_mib, 1),
                                                "minit5_of_checkpoint": round(results["minit5"]["peak"] / size_mib, 3)})

    def load(self):
        code = """
            def run(which):
                times = []
                for _ in range(3):
                    start = time.perf_counter()
                    if which == "hf":
                        T5ForConditionalGeneration.from_pretrained(folder)
                    else:
                        T5.from_pretrained(folder)
                    times.append(time.perf_counter() - start)
                return sorted(times)[1]
        """
        results = {w: self.fresh_process(code, f"run({w!r})") for w in ("hf", "minit5")}
        self.add("checkpoint load time (fp32, warm file cache)", "s", results["hf"], results["minit5"],
                 higher_is_better=False)

    # ---------------------------------------------------------------------------------- LoRA
    LORA = dict(r=8, alpha=16, targets=["q", "v"])  # peft's default targets for T5, typical r and alpha

    def lora_models(self, lora: bool):
        """transformers (wrapped by peft when lora) and minit5 (minit5/lora.py when lora) on the same weights."""
        import warnings
        from peft import LoraConfig, get_peft_model  # main() checked that it is installed

        from minit5.lora import add_lora
        warnings.filterwarnings("ignore", category=FutureWarning)  # peft 0.21 calls a deprecated transformers name
        hf, ours = self.models(torch.float32, attention="eager")
        if lora:
            c = self.LORA
            hf = get_peft_model(hf, LoraConfig(r=c["r"], lora_alpha=c["alpha"], target_modules=c["targets"],
                                               task_type="SEQ_2_SEQ_LM"))
            add_lora(ours, r=c["r"], alpha=c["alpha"], targets=c["targets"])
        return hf.train(), ours.train()

    def lora(self):
        """A LoRA step beside a full fine-tuning step (8 x (512 + 114) tokens, fp32, AdamW): trainable parameters,
        the optimizer's state, tokens/s, and peak memory; peft + transformers beside minit5 for each."""
        label = f"LoRA r={self.LORA['r']} on {','.join(self.LORA['targets'])}"
        # Peak memory first, each in a fresh process, while this one holds no model: its timed steps of
        # flan-T5-base full fine-tuning below reach ~18 GiB, too much to have a measuring process beside them.
        peaks = {lora: {w: self.training_peak_memory(w, lora) for w in ("hf", "minit5")} for lora in (False, True)}
        for lora in (False, True):
            self.lora_speed(label if lora else "full fine-tuning", lora)
            release_memory()
        for lora in (False, True):
            self.add(f"{label if lora else 'full fine-tuning'}: step peak memory above the loaded model", "MiB",
                     peaks[lora]["hf"], peaks[lora]["minit5"], higher_is_better=False)

    def lora_speed(self, kind: str, lora: bool):
        """Trainable parameters, AdamW state and tokens/s of one kind of step, both models. In a method of its own
        so that the models, optimizers and step closures are freed when it returns."""
        batch, src, tgt = self.TRAIN_BATCH
        hf, ours = self.lora_models(lora)
        steps, optimizers = self.training_steps(hf, ours)
        t_hf, t_ours = paired_median_times(steps["hf"], steps["minit5"], self.args.reps, sync=self.sync)
        counts = {n: sum(p.numel() for p in m.parameters() if p.requires_grad) for n, m in (("hf", hf),
                                                                                             ("minit5", ours))}
        state_mib = {n: sum(t.numel() * t.element_size() for st in o.state.values() for t in st.values()
                           if torch.is_tensor(t)) / 2 ** 20 for n, o in optimizers.items()}
        self.add(f"{kind}: trainable parameters", "params", counts["hf"], counts["minit5"], higher_is_better=False)
        self.add(f"{kind}: AdamW state", "MiB", state_mib["hf"], state_mib["minit5"], higher_is_better=False)
        self.add(f"{kind}: training step {batch} x ({src} + {tgt}), fp32", "tokens/s", batch * (src + tgt) / t_hf,
                 batch * (src + tgt) / t_ours)

    def training_peak_memory(self, which: str, lora: bool) -> float:
        """MiB above the loaded model at the peak of two training steps on TRAIN_BATCH (with LoRA if lora), in a
        fresh process. The memory section measures full fine-tuning with it, the lora section both kinds."""
        c, (batch, src, tgt) = self.LORA, self.TRAIN_BATCH
        code = f"""
            def run(which, lora):
                torch.manual_seed(0)
                ids = torch.randint(3, 32000, ({batch}, {src})); labels = torch.randint(3, 32000, ({batch}, {tgt}))
                if which == "hf":
                    model = T5ForConditionalGeneration.from_pretrained(folder).train()
                    if lora:
                        from peft import LoraConfig, get_peft_model
                        model = get_peft_model(model, LoraConfig(r={c['r']}, lora_alpha={c['alpha']},
                                               target_modules={c['targets']!r}, task_type="SEQ_2_SEQ_LM"))
                    loss = lambda: model(input_ids=ids, labels=labels).loss
                else:
                    model = T5.from_pretrained(folder).train()
                    if lora:
                        from minit5.lora import add_lora
                        add_lora(model, r={c['r']}, alpha={c['alpha']}, targets={c['targets']!r})
                    loss = lambda: model(ids, labels=labels)[1]
                opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, fused=True)
                before = status_mib('VmRSS')
                for _ in range(2):
                    loss().backward(); opt.step(); opt.zero_grad(set_to_none=True)
                return status_mib('VmHWM') - before
        """
        return self.fresh_process(code, f"run({which!r}, {lora})")

    # ----------------------------------------------------------------------------------
    def run(self, sections):
        self.dtypes = [torch.float32, torch.bfloat16]
        print(f"{'':<44} {'HF':>10} {'minit5':>10} {'unit':<10} ratio", flush=True)
        for section in sections:
            getattr(self, section.replace("-", "_"))()
        return self.rows


def markdown(results: dict) -> str:
    """A results JSON as the Markdown table of docs/performance.md."""
    info = results["info"]
    lines = [f"flan-T5-{info['size']} shape, random weights, {info['device']}, {info['threads']} threads, "
             f"torch {info['torch']}, transformers {info['transformers']}, {info['cpu_count']} cores "
             f"({info['cpu']}), {info['date']}, whole suite {info['seconds']} s", "",
             "| measurement | unit | transformers | minit5 | ratio (above 1: minit5 better) | notes |", "|---|---|---:|---:|---:|---|"]
    for row in results["rows"]:
        notes = ", ".join(f"{k} {v}" for k, v in row.items()
                          if k not in ("name", "unit", "hf", "minit5", "ratio", "higher_is_better"))
        lines.append(f"| {row['name']} | {row['unit']} | {row['hf']:.2f} | {row['minit5']:.2f} | "
                     f"**{row['ratio']:.2f}x** | {notes} |")
    return "\n".join(lines)


def positive_int(text: str) -> int:
    """argparse type for counts (--threads, --reps, ...): a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def device_here(text: str) -> str:
    """argparse type for --device: cpu, or a CUDA GPU that this machine has."""
    try:
        device = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a device name (cpu, cuda, cuda:1)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"{text!r} asked for, but torch {torch.__version__} sees no CUDA GPU "
                                             "here; leave --device out to measure on the CPU")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(f"{text!r} asked for, but this machine has "
                                             f"{torch.cuda.device_count()} CUDA GPU(s): cuda:0 ...")
    elif device.type != "cpu":
        raise argparse.ArgumentTypeError(f"{text!r}: the benchmark measures on cpu or cuda only")
    return text


def read_results(parser: argparse.ArgumentParser, path: str) -> dict:
    """The results file of --markdown, or parser.error naming what is wrong with it."""
    try:
        results = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        parser.error(f"argument --markdown: {path} does not exist")
    except (OSError, UnicodeDecodeError) as e:
        parser.error(f"argument --markdown: cannot read {path} ({e})")
    except json.JSONDecodeError as e:
        parser.error(f"argument --markdown: {path} is not valid JSON ({e})")
    if not (isinstance(results, dict) and isinstance(results.get("info"), dict)
            and isinstance(results.get("rows"), list)):
        parser.error(f"argument --markdown: {path} is not a results file of bench/run.py "
                     "(a JSON object with 'info' and 'rows')")
    return results


def check_out(parser: argparse.ArgumentParser, out: Path) -> None:
    """Fail now, not after minutes of measuring, when the results file cannot be written."""
    if out.is_dir():
        parser.error(f"argument --out: {out} is a folder; give a file name such as {out / 'results.json'}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out.parent):
            pass
    except OSError as e:
        blocker = next((f for f in out.parents if f.exists() and not f.is_dir()), None)
        parser.error(f"argument --out: cannot write {out} "
                     f"({f'{blocker} is not a folder' if blocker else e.strerror or e})")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--markdown", metavar="JSON", help="print a results file as a Markdown table and stop")
    p.add_argument("--size", default="small", choices=["small", "base", "large", "xl", "xxl"])
    p.add_argument("--threads", type=positive_int, default=2)
    p.add_argument("--device", type=device_here, default="cpu")
    p.add_argument("--only", nargs="+", choices=SECTIONS, default=DEFAULT_SECTIONS)
    p.add_argument("--reps", type=positive_int, default=5,
                   help="timed repetitions in the lora and decode-int8 sections (default 5)")
    p.add_argument("--bf16-train", action="store_true", help="also time bf16 autocast training on CPU")
    p.add_argument("--out", help="JSON output path (default bench/results/<size>-<device>.json)")
    args = p.parse_args()
    if args.markdown:
        results = read_results(p, args.markdown)
        try:
            table = markdown(results)
        except (KeyError, TypeError, ValueError) as e:
            p.error(f"argument --markdown: {args.markdown} is not a results file of bench/run.py "
                    f"(a field is missing or malformed: {e})")
        return print(table)
    args.only = list(dict.fromkeys(args.only))  # each section once, in the order given
    # a section run on its own is kept apart from the main table's results file
    prefix = {("lora",): "lora-", ("decode-int8",): "int8-"}.get(tuple(args.only), "")
    out = Path(args.out or ROOT / "bench" / "results" / f"{prefix}{args.size}-{args.device}.json")
    check_out(p, out)
    try:
        import transformers
    except ImportError:
        p.error('the benchmark compares minit5 with transformers, which is not installed: pip install -e ".[bench]"')
    if "lora" in args.only:
        try:
            import peft  # noqa: F401
        except ImportError:
            p.error('argument --only: the lora section compares minit5 with peft, which is not installed: '
                    'pip install "peft==0.21.*" (or -e ".[test]")')
    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    started = time.time()
    bench = Bench(args)
    rows = bench.run(args.only)
    info = dict(size=args.size, device=args.device, threads=args.threads, torch=torch.__version__,
                transformers=transformers.__version__, cpu=platform.processor() or platform.machine(),
                cpu_count=os.cpu_count(), seconds=round(time.time() - started, 1),
                date=time.strftime("%Y-%m-%d"))
    write_json(out, dict(info=info, rows=rows), sort_keys=False)
    print(f"\n{info['seconds']} s; written to {out}")

if __name__ == "__main__":
    main()
