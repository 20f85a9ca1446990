"""Where do two T5 models part? Runs the same inputs through two models and compares them stage by stage.

    python -m minit5.parity MODEL                     MODEL in minit5 against MODEL in transformers (fp32)
    python -m minit5.parity MODEL --against REF       two checkpoints, both in minit5; REF is the trusted one
    python -m minit5.parity MODEL --dtype float16     MODEL in half precision against MODEL itself in fp32
    python -m minit5.parity MODEL --tokenizer DIR     MODEL has no tokenizer files (model.save_pretrained alone)
    compare("out/ft", against="google/flan-t5-small") the same from Python: the result as a dict

A stage is one point of the forward pass, named by minit5's module path: the embeddings as each stack receives
them, every sublayer of every block after its residual add (`encoder.blocks.3.ffn`, `decoder.blocks.1.cross_attn`),
the two final norms, the logits. Forward hooks record each stage on both sides (the model code is not touched);
the first stage whose difference exceeds the tolerance is where the two models part. Then both sides generate
(greedy and beam search) and the tokens are compared step by step. docs/parity.md shows reports and how to read them.

Everything runs on the CPU. Exit status: 0 when every stage is within tolerance and the tokens are identical, 1 when
not, 2 for bad input (refused in one line before anything runs).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoint import CheckpointError, hf_name, resolve_path, write_json
from .config import MODEL_TYPES, ConfigError, T5Config
from .model import T5
from .tokenizer import Tokenizer, TokenizerError

# The default inputs: short, flan-style, in English and Chinese (flan-T5's vocabulary maps most Chinese
# characters to <unk>, which is an input like any other).
PROMPTS = [
    "Where is Ganymede?",
    "Translate English to German: How old are you?",
    "Answer the question: what is the boiling point of water in Celsius?",
    "木卫三在哪里？",
    "把这句话翻译成英文：我今天很高兴。",
]
# Largest allowed max|Δ| / max|reference activation| at a stage, by the dtype MODEL runs in. Justified in
# docs/parity.md ("Tolerances"): well above the rounding each dtype makes, well below what a wrong tensor does.
TOLERANCES = {"float32": 1e-4, "bfloat16": 0.1, "float16": 0.02}
NUM_BEAMS = 4


class BadInput(Exception):
    """Input that the tool refuses before running anything; the message is one sentence naming it."""


# --------------------------------------------------------------------------------------------------
# Stages: names in the order the forward pass computes them, and where they are on each side
# --------------------------------------------------------------------------------------------------
def sublayers(stack: str) -> tuple[str, ...]:
    return ("self_attn", "cross_attn", "ffn") if stack == "decoder" else ("self_attn", "ffn")


def stage_names(config: T5Config) -> list[str]:
    names = []
    for stack, depth in (("encoder", config.num_layers), ("decoder", config.num_decoder_layers)):
        names.append(f"embed ({stack})")  # the shared embedding, as this stack receives it
        names += [f"{stack}.blocks.{i}.{sub}" for i in range(depth) for sub in sublayers(stack)]
        names.append(f"{stack}.final_norm")
    return names + ["logits"]


def stage_of_parameter(name: str) -> str:
    """The first stage a minit5 parameter acts in: where a wrong value in it shows first.
    `decoder.blocks.1.cross_attn_norm.weight` -> `decoder.blocks.1.cross_attn`; `embed.weight` -> `embed (encoder)`."""
    if name == "embed.weight":
        return "embed (encoder)"
    if name == "lm_head.weight":
        return "logits"
    parts = name.split(".")  # e.g. encoder.blocks.3.ffn.up.weight, decoder.final_norm.weight
    if parts[1] == "final_norm":
        return f"{parts[0]}.final_norm"
    module = parts[3].removesuffix("_norm")
    return f"{parts[0]}.blocks.{parts[2]}.{'self_attn' if module == 'position_bias' else module}"


class Recorder:
    """Forward hooks that keep every stage of one forward pass: stages[name] = tensor (B, T, D) or logits.
    ffn_hidden[name] = the largest |value| per position (B, T) of that feed-forward's hidden layer (what `down`
    reads), where half precision overflows first."""

    def __init__(self):
        self.stages, self.ffn_hidden, self._handles = {}, {}, []

    def keep(self, module, name, pick=lambda out: out):
        self._handles.append(module.register_forward_hook(
            lambda m, args, out: self.stages.__setitem__(name, pick(out).detach())))

    def keep_input(self, module, name):
        self._handles.append(module.register_forward_pre_hook(
            lambda m, args: self.stages.__setitem__(name, args[0].detach())))

    def keep_hidden_peak(self, module, name):
        self._handles.append(module.register_forward_pre_hook(
            lambda m, args: self.ffn_hidden.__setitem__(name, args[0].detach().abs().amax(-1).float())))

    def remove(self):
        for handle in self._handles:
            handle.remove()
        self._handles = []


def record_minit5(model: T5) -> Recorder:
    """Hooks on a minit5 model. A block adds each sublayer to its input inline (x + sublayer(norm(x))), so the
    residual sum is rebuilt here from the norm's input and the sublayer's output: the same addition, the same
    bits (dropout is off in eval mode)."""
    rec, residual_in = Recorder(), {}
    for stack_name in ("encoder", "decoder"):
        stack = getattr(model, stack_name)
        rec.keep_input(stack, f"embed ({stack_name})")  # Stack.forward receives the embedded tokens
        for i, block in enumerate(stack.blocks):
            for sub in sublayers(stack_name):
                name = f"{stack_name}.blocks.{i}.{sub}"
                rec._handles.append(getattr(block, f"{sub}_norm").register_forward_pre_hook(
                    lambda m, args, name=name: residual_in.__setitem__(name, args[0])))
                rec.keep(getattr(block, sub), name, pick=lambda out, name=name: residual_in.pop(name) + out)
            rec.keep_hidden_peak(block.ffn.down, f"{stack_name}.blocks.{i}.ffn")
        rec.keep(stack.final_norm, f"{stack_name}.final_norm")
    return rec


def hf_module_name(stage: str, config: T5Config) -> str:
    """The transformers module whose output is this stage, found through minit5's name table (checkpoint.py):
    a sublayer is the module that owns its norm (`encoder.blocks.3.ffn` -> `encoder.block.3.layer.1`)."""
    if stage.startswith("embed ("):
        return f"{stage[7:-1]}.embed_tokens"
    if stage.endswith(".final_norm"):
        return hf_name(f"{stage}.weight", config).removesuffix(".weight")
    return hf_name(f"{stage}_norm.weight", config).removesuffix(".layer_norm.weight")


def record_transformers(hf, config: T5Config) -> Recorder:
    """Hooks on a transformers T5/mT5/umT5 model. Its T5LayerSelfAttention, T5LayerCrossAttention and T5LayerFF
    each return the hidden states after their residual add (attention layers as the first item of a tuple)."""
    rec, modules = Recorder(), dict(hf.named_modules())
    for name in stage_names(config)[:-1]:
        rec.keep(modules[hf_module_name(name, config)], name,
                 pick=lambda out: out[0] if isinstance(out, tuple) else out)
        if name.endswith(".ffn"):
            rec.keep_hidden_peak(modules[hf_name(f"{name}.down.weight", config).removesuffix(".weight")], name)
    return rec


# --------------------------------------------------------------------------------------------------
# The two sides
# --------------------------------------------------------------------------------------------------
@dataclass
class Side:
    """One model as the comparison sees it: what it is, a forward pass that records stages, and generate."""
    description: str  # e.g. "minit5, float16" or "transformers 5.24.0, float32, eager attention"
    model: object
    config: T5Config
    is_transformers: bool = False

    @torch.no_grad()
    def stages(self, input_ids, attention_mask, decoder_input_ids) -> Recorder:
        rec = record_transformers(self.model, self.config) if self.is_transformers else record_minit5(self.model)
        try:
            if self.is_transformers:
                logits = self.model(input_ids=input_ids, attention_mask=attention_mask,
                                    decoder_input_ids=decoder_input_ids, use_cache=False).logits
            else:
                logits, _ = self.model(input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids)
        finally:
            rec.remove()
        rec.stages["logits"] = logits
        return rec

    @torch.no_grad()
    def generate(self, input_ids, attention_mask, max_new_tokens: int, num_beams: int) -> torch.Tensor:
        if self.is_transformers:  # use_cache=False: its cache rounds differently (docs/parity.md)
            return self.model.generate(input_ids=input_ids, attention_mask=attention_mask,
                                       max_new_tokens=max_new_tokens, num_beams=num_beams, do_sample=False,
                                       use_cache=False)
        return self.model.generate(input_ids, attention_mask, max_new_tokens=max_new_tokens, num_beams=num_beams)


# --------------------------------------------------------------------------------------------------
# Comparing
# --------------------------------------------------------------------------------------------------
def decoder_positions(decoder_input_ids, eos_id: int):
    """(B, T) bool: each teacher-forced answer's positions up to and including its first EOS (then fill)."""
    eos_before = torch.cumsum((decoder_input_ids == eos_id).long(), dim=1) - (decoder_input_ids == eos_id).long()
    return eos_before == 0


def compare_stages(model_rec: Recorder, ref_rec: Recorder, names, encoder_valid, decoder_valid, tolerance: float,
                   half_max: float | None) -> list[dict]:
    """One row per stage: max|Δ|, max|Δ| / max|reference| (the relative difference the tolerance applies to), the
    largest |activation| on each side, inf/NaN counts, and flags. Only real positions count (not padding)."""
    rows = []
    for name in names:
        valid = encoder_valid if name.startswith(("encoder", "embed (encoder)")) else decoder_valid
        ours, ref = model_rec.stages[name][valid].float(), ref_rec.stages[name][valid].float()  # (N, D)
        diff = (ours - ref).abs()
        max_diff = diff.max().item() if diff.numel() else 0.0  # NaN if any element is NaN
        ref_finite = ref[torch.isfinite(ref)]
        scale = ref_finite.abs().max().item() if ref_finite.numel() else 0.0  # the stage's scale
        rel = max_diff / scale if scale > 0 else (0.0 if max_diff == 0 else math.inf)
        row = dict(name=name, max_abs_diff=max_diff, rel_diff=rel,
                   max_abs_model=_peak(ours), max_abs_reference=_peak(ref),  # inf or NaN when there are any
                   nonfinite_model=int((~torch.isfinite(ours)).sum()),
                   nonfinite_reference=int((~torch.isfinite(ref)).sum()))
        row["over_tolerance"] = not (rel <= tolerance)  # NaN compares False: over
        if name in model_rec.ffn_hidden:
            row["max_abs_ffn_hidden_model"] = model_rec.ffn_hidden[name][valid].max().item()
            row["max_abs_ffn_hidden_reference"] = ref_rec.ffn_hidden[name][valid].max().item()
        if half_max is not None:  # would this stage overflow half precision? (measured on the fp32 side)
            row["reference_exceeds_half_range"] = (scale > half_max
                                                   or row.get("max_abs_ffn_hidden_reference", 0.0) > half_max)
        rows.append(row)
    return rows


def _peak(x) -> float:
    return x.abs().max().item() if x.numel() else 0.0


def answer_tokens(row: torch.Tensor, eos_id: int) -> list[int]:
    """A generated row [start, t1, ..., EOS, fill...] -> [t1, ..., EOS] (the fill after EOS dropped)."""
    tokens = row[1:].tolist()
    return tokens[:tokens.index(eos_id) + 1] if eos_id in tokens else tokens


def first_difference(a: list[int], b: list[int]) -> int | None:
    """The first step (1 = the first generated token) where two answers differ, or None if identical."""
    for step, (x, y) in enumerate(zip(a, b), start=1):
        if x != y:
            return step
    return None if len(a) == len(b) else min(len(a), len(b)) + 1


def compare_tokens(prompts, ours, ref, eos_id: int, tokenizer) -> list[dict]:
    rows = []
    for prompt, a_row, b_row in zip(prompts, ours, ref):
        a, b = answer_tokens(a_row, eos_id), answer_tokens(b_row, eos_id)
        rows.append(dict(prompt=prompt, model=a, reference=b, first_difference=first_difference(a, b),
                         model_text=tokenizer.decode(a), reference_text=tokenizer.decode(b)))
    return rows


# --------------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------------
def fmt(x: float) -> str:
    if isinstance(x, str) or not math.isfinite(x):
        return str(x)
    return "0" if x == 0 else f"{x:.2e}"


def stage_table(result: dict) -> list[str]:
    rows, first = result["stages"], result["first_divergence"]
    width = max(len(r["name"]) for r in rows)
    header = f"{'max|Δ|':>9}  {'rel Δ':>9}  {'max|act| MODEL':>14}  {'max|act| REF':>12}  note"
    lines = [f"   {'stage':<{width}}  {header}"]
    first_nonfinite = result["first_nonfinite"]["model"]
    for r in rows:
        mark = ">> " if r["name"] == first else (" ! " if r["over_tolerance"] else "   ")
        notes = []
        if r["name"] == first:
            notes.append(f"first over tolerance ({fmt(r['rel_diff'])} > {fmt(result['tolerance'])})")
        if r["name"] == first_nonfinite:
            notes.append(f"inf/NaN first appears in MODEL ({r['nonfinite_model']} values)")
        if r.get("reference_exceeds_half_range"):
            peaks = [(where, r.get(key, 0.0)) for where, key in (("FFN hidden", "max_abs_ffn_hidden_reference"),
                                                                 ("output", "max_abs_reference"))]
            over = " and ".join(f"REF's {where} reaches {fmt(peak)}" for where, peak in peaks if peak > result["half_max"])
            notes.append(f"{over} > {result['dtype']} max {fmt(result['half_max'])}")
        lines.append(f"{mark}{r['name']:<{width}}  {fmt(r['max_abs_diff']):>9}  {fmt(r['rel_diff']):>9}  "
                     f"{fmt(r['max_abs_model']):>14}  {fmt(r['max_abs_reference']):>12}  {'; '.join(notes)}".rstrip())
    return lines


def token_lines(title: str, rows: list[dict]) -> list[str]:
    lines = [title]
    for i, r in enumerate(rows, start=1):
        prompt = r["prompt"] if len(r["prompt"]) <= 40 else r["prompt"][:39] + "…"
        if r["first_difference"] is None:
            answer = _answer(r["model"], r["model_text"])
            lines.append(f"  {i}  {prompt!r}: identical ({len(r['model'])} tokens) {answer}")
        else:
            step = r["first_difference"]
            lines.append(f"  {i}  {prompt!r}: differ at step {step} "
                         f"(MODEL token {_token_at(r['model'], step)}, REF token {_token_at(r['reference'], step)})")
            lines.append(f"       MODEL {_answer(r['model'], r['model_text'])}")
            lines.append(f"       REF   {_answer(r['reference'], r['reference_text'])}")
    return lines


def _answer(tokens, text) -> str:
    """The decoded answer, or its ids when they decode to nothing (e.g. ids the tokenizer does not have)."""
    if text.strip():
        return repr(text)
    return "ids " + " ".join(map(str, tokens[:12])) + (" …" if len(tokens) > 12 else "")


def _token_at(tokens, step):
    return tokens[step - 1] if step <= len(tokens) else "(ended)"


def render(result: dict) -> str:
    lines = [f"MODEL  {result['model']['path']}  ({result['model']['runs_in']})",
             f"REF    {result['reference']['path']}  ({result['reference']['runs_in']})"]
    ids = result["tokenizer_ids_identical"]
    tokenizer_note = {True: "; transformers' tokenizer gives the same ids", False: "; transformers' tokenizer gives "
                      "DIFFERENT ids (" + result.get("tokenizer_note", "") + ")", None: ""}[ids]
    if ids is not None and result["reference"]["kind"] == "minit5":
        tokenizer_note = tokenizer_note.replace("transformers' tokenizer", "REF's tokenizer")
    tokenised_by = f"the tokenizer of {result['tokenizer']}" if result.get("tokenizer") else "MODEL's tokenizer"
    lines.append(f"inputs: {len(result['prompts'])} prompts, {result['input_tokens']} tokens, "
                 f"tokenised by {tokenised_by}{tokenizer_note}")
    lines.append(f"stages: the decoder is fed REF's greedy answers; rel Δ = max|Δ| / max|act REF|, "
                 f"tolerance {fmt(result['tolerance'])}")
    lines += ["", *stage_table(result), "",
              *token_lines(f"greedy (up to {result['max_new_tokens']} new tokens)", result["tokens"]["greedy"]),
              *token_lines(f"beam search ({NUM_BEAMS} beams)", result["tokens"]["beam"]), "", verdict(result)]
    return "\n".join(lines)


def verdict(result: dict) -> str:
    if result["agree"]:
        return (f"AGREE: every stage within {fmt(result['tolerance'])} relative, greedy and beam tokens identical"
                + ("" if result["tokenizer_ids_identical"] is None else ", tokenizer ids identical"))
    parts = []
    if result["tokenizer_ids_identical"] is False:
        parts.append("the tokenizers give different ids")
    if result["first_divergence"]:
        row = next(r for r in result["stages"] if r["name"] == result["first_divergence"])
        parts.append(f"first divergence at {row['name']} (rel Δ {fmt(row['rel_diff'])} > {fmt(result['tolerance'])})")
    for kind, side in (("model", "MODEL"), ("reference", "REF")):
        if result["first_nonfinite"][kind]:
            parts.append(f"inf/NaN first appears in {side} at {result['first_nonfinite'][kind]}")
    for search in ("greedy", "beam"):
        differing = sum(r["first_difference"] is not None for r in result["tokens"][search])
        if differing:
            parts.append(f"{search} tokens differ for {differing} of {len(result['prompts'])} prompts")
    return "DIFFER: " + "; ".join(parts)


# --------------------------------------------------------------------------------------------------
# Loading, with every check made before anything runs
# --------------------------------------------------------------------------------------------------
SHAPE_FIELDS = ("vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_decoder_layers", "num_heads",
                "relative_attention_num_buckets", "is_gated", "tie_word_embeddings", "position_bias_in_every_layer")


def read_config(path_or_id, what: str) -> tuple[Path, T5Config]:
    try:
        folder = resolve_path(path_or_id, what=what)
    except CheckpointError as e:
        raise BadInput(str(e)) from None
    if not (folder / "config.json").exists():
        raise BadInput(f"{what} {folder} is not a T5 checkpoint: it has no config.json")
    try:
        return folder, T5Config.from_json_file(folder / "config.json")
    except ConfigError as e:
        raise BadInput(f"{what} is not a T5 checkpoint: {e}") from None


def load_minit5(folder: Path, what: str, dtype) -> T5:
    try:
        return T5.from_pretrained(folder, dtype=dtype)
    except CheckpointError as e:
        raise BadInput(f"{what}: {e}") from None


def check_same_shapes(model: T5, ref: T5, model_folder: Path, ref_folder: Path):
    for name in SHAPE_FIELDS:
        a, b = getattr(model.config, name), getattr(ref.config, name)
        if a != b:
            raise BadInput(f"MODEL and REF have different shapes: {name} is {a} in MODEL ({model_folder}) "
                           f"but {b} in REF ({ref_folder})")
    ref_shapes = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    for k, v in model.state_dict().items():
        if ref_shapes.get(k) != tuple(v.shape):
            raise BadInput(f"MODEL and REF have different shapes: {k} is {list(v.shape)} in MODEL ({model_folder}) "
                           f"but {list(ref_shapes.get(k, ()))} in REF ({ref_folder})")


def read_prompts(path) -> list[str] | None:
    if path is None:
        return None  # compare's default, PROMPTS
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise BadInput(f"cannot read --prompts {path}: {getattr(e, 'strerror', None) or e}") from None
    prompts = [line for line in lines if line.strip()]
    if not prompts:
        raise BadInput(f"--prompts {path} holds no prompt (one per line)")
    return prompts


def import_transformers():
    try:
        import transformers
    except ImportError:
        raise BadInput('comparing with transformers needs it installed (the test extra): pip install -e ".[test]"; '
                       "or compare two checkpoints with --against REF") from None
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


def tokenizer_ids_agree(tokenizer: Tokenizer, other, prompts) -> tuple[bool, str]:
    """Whether another tokenizer (transformers' or REF's) encodes every prompt to the same ids; a note if not."""
    for i, prompt in enumerate(prompts, start=1):
        a = tokenizer.encode(prompt)
        b = other(prompt)["input_ids"] if callable(other) else other.encode(prompt)
        if a != list(b):
            step = first_difference(a, list(b))
            return False, f"prompt {i} first differs at token {step}"
    return True, ""


# --------------------------------------------------------------------------------------------------
# The comparison, as a function
# --------------------------------------------------------------------------------------------------
def load_sides(model, against, dtype: str, prompts, tokenizer_path) -> tuple[Side, Side, Tokenizer, dict]:
    """Everything that can be refused, refused here: (model side, reference side, tokenizer, extras)."""
    torch_dtype = getattr(torch, dtype)
    against_transformers = against is None and dtype == "float32"
    transformers = import_transformers() if against_transformers else None
    model_folder, model_config = read_config(model, "MODEL")
    ref_folder = read_config(against, "REF")[0] if against else model_folder
    try:
        tokenizer_folder = resolve_path(tokenizer_path, what="--tokenizer") if tokenizer_path else model_folder
        tokenizer = Tokenizer.from_pretrained(tokenizer_folder)
    except CheckpointError as e:  # --tokenizer names no folder
        raise BadInput(str(e)) from None
    except TokenizerError as e:
        if tokenizer_path:
            raise BadInput(f"--tokenizer: {e}") from None
        raise BadInput(f"MODEL needs a tokenizer for its inputs: {e}; a folder of weights alone (model."
                       f"save_pretrained) can borrow one with --tokenizer DIR_OR_HUB_ID") from None
    too_big = [i for p in prompts for i in tokenizer.encode(p) if i >= model_config.vocab_size]
    if too_big:
        raise BadInput(f"MODEL's tokenizer gives id {max(too_big)}, but the model's embedding has only "
                       f"{model_config.vocab_size} rows ({model_folder / 'config.json'})")

    model = load_minit5(model_folder, "MODEL", torch_dtype)
    model_side = Side(f"minit5, {dtype}", model, model.config)
    extras = dict(tokenizer_ids_identical=None, tokenizer_note="", kind="minit5",
                  tokenizer=str(tokenizer_folder) if tokenizer_path else None,
                  paths=dict(model=str(model_folder), reference=str(ref_folder)))
    if against:
        ref = load_minit5(ref_folder, "REF", torch_dtype)
        check_same_shapes(model, ref, model_folder, ref_folder)
        ref_side = Side(model_side.description, ref, ref.config)
        try:
            extras["tokenizer_ids_identical"], extras["tokenizer_note"] = tokenizer_ids_agree(
                tokenizer, Tokenizer.from_pretrained(ref_folder), prompts)
        except TokenizerError:  # a folder of weights only: no tokenizer to compare
            pass
    elif not against_transformers:  # half precision against itself in fp32
        ref = load_minit5(model_folder, "MODEL", torch.float32)
        ref_side = Side("minit5, float32", ref, ref.config)
    else:
        hf_class = getattr(transformers, MODEL_TYPES[model_config.model_type])
        try:
            hf = hf_class.from_pretrained(model_folder, attn_implementation="eager", dtype=torch.float32).eval()
        except Exception as e:  # transformers refuses the folder: say so in one line
            raise BadInput(f"transformers cannot load MODEL ({model_folder}): {str(e).strip().splitlines()[0]}") \
                from None
        ref_side = Side(f"transformers {transformers.__version__}, float32, eager attention", hf,
                        model.config, is_transformers=True)
        try:
            from transformers import AutoTokenizer
            hf_tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder)
            extras["tokenizer_ids_identical"], extras["tokenizer_note"] = tokenizer_ids_agree(
                tokenizer, hf_tokenizer, prompts)
        except Exception as e:  # a tokenizer minit5 reads but transformers does not: that is a difference too
            extras["tokenizer_ids_identical"] = False
            extras["tokenizer_note"] = f"transformers cannot load it: {str(e).strip().splitlines()[0]}"
        extras["kind"] = "transformers"
    return model_side, ref_side, tokenizer, extras


def compare(model, against=None, dtype: str = "float32", prompts=None, max_new_tokens: int = 32,
            tolerance: float | None = None, tokenizer=None) -> dict:
    """python -m minit5.parity as a function: the result as a dict (render(result) is the printed report).
    model, against, tokenizer: folders or hub ids, as the command's MODEL, --against and --tokenizer; prompts: a
    list of texts (default PROMPTS). Refused input raises BadInput (one sentence, naming the command's option)
    before anything runs."""
    from tqdm import tqdm
    if dtype not in TOLERANCES:
        raise BadInput(f"--dtype must be one of {', '.join(TOLERANCES)}, got {dtype!r}")
    if max_new_tokens < 1:
        raise BadInput(f"--max-new-tokens must be at least 1, got {max_new_tokens}")
    if tolerance is not None and not tolerance > 0:
        raise BadInput(f"--tolerance must be a positive number, got {tolerance}")
    prompts = list(PROMPTS if prompts is None else prompts)
    if not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
        raise BadInput("the prompts must be a list of texts, none of them empty")
    model_side, ref_side, tokenizer, extras = load_sides(model, against, dtype, prompts, tokenizer)
    config = model_side.config
    tolerance = tolerance if tolerance is not None else TOLERANCES[dtype]
    input_ids, attention_mask = tokenizer.encode_batch(prompts)  # (B, S), right-padded
    progress = tqdm(total=5, desc="parity", disable=None, file=sys.stderr, leave=False)

    def generate(side: Side, num_beams: int):  # (B, 1 + steps)
        out = side.generate(input_ids, attention_mask, max_new_tokens, num_beams)
        progress.update()
        return out

    ref_greedy = generate(ref_side, 1)
    ref_rec = ref_side.stages(input_ids, attention_mask, ref_greedy)
    model_rec = model_side.stages(input_ids, attention_mask, ref_greedy)
    progress.update()
    half_max = torch.finfo(getattr(torch, dtype)).max if dtype == "float16" else None
    stages = compare_stages(model_rec, ref_rec, stage_names(config), attention_mask.bool(),
                            decoder_positions(ref_greedy, config.eos_token_id), tolerance, half_max)
    del model_rec, ref_rec
    greedy = generate(model_side, 1)
    model_beam, ref_beam = generate(model_side, NUM_BEAMS), generate(ref_side, NUM_BEAMS)
    progress.close()
    eos = config.eos_token_id
    tokens = dict(greedy=compare_tokens(prompts, greedy, ref_greedy, eos, tokenizer),
                  beam=compare_tokens(prompts, model_beam, ref_beam, eos, tokenizer))

    first = next((r["name"] for r in stages if r["over_tolerance"]), None)
    first_nonfinite = {side: next((r["name"] for r in stages if r[f"nonfinite_{side}"]), None)
                       for side in ("model", "reference")}
    tokens_identical = all(r["first_difference"] is None for rows in tokens.values() for r in rows)
    agree = first is None and tokens_identical and extras["tokenizer_ids_identical"] is not False
    return dict(
        model=dict(path=extras["paths"]["model"], runs_in=model_side.description),
        reference=dict(path=extras["paths"]["reference"], runs_in=ref_side.description, kind=extras["kind"]),
        dtype=dtype, tolerance=tolerance, half_max=half_max, max_new_tokens=max_new_tokens,
        num_beams=NUM_BEAMS, prompts=prompts, input_tokens=int(attention_mask.sum()), tokenizer=extras["tokenizer"],
        tokenizer_ids_identical=extras["tokenizer_ids_identical"], tokenizer_note=extras["tokenizer_note"],
        stages=stages, first_divergence=first, first_nonfinite=first_nonfinite,
        first_stage_beyond_half_range=next((r["name"] for r in stages if r.get("reference_exceeds_half_range")), None),
        tokens=tokens, tokens_identical=tokens_identical, agree=agree, exit_status=0 if agree else 1)


def to_json(x):
    """The result with inf/NaN written as strings (JSON has neither)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else str(x)
    if isinstance(x, dict):
        return {k: to_json(v) for k, v in x.items()}
    return [to_json(v) for v in x] if isinstance(x, list) else x


# --------------------------------------------------------------------------------------------------
# The command line: its arguments, then compare()
# --------------------------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit status 2, as every other bad input
        self.exit(2, f"error: {message} (see python -m minit5.parity --help)\n")


def parse_args(argv):
    p = _Parser(prog="python -m minit5.parity", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL", help="a Hugging Face-format T5 folder or hub id")
    p.add_argument("--against", metavar="REF", help="compare with this checkpoint (both in minit5) instead of "
                                                    "transformers; REF is the trusted side")
    p.add_argument("--dtype", default="float32", choices=list(TOLERANCES),
                   help="MODEL's precision; without --against the reference is then MODEL in float32")
    p.add_argument("--tokenizer", metavar="DIR", help="the tokenizer's folder or hub id, when MODEL has none")
    p.add_argument("--prompts", metavar="FILE", help="prompts, one per line (default: a small built-in set)")
    p.add_argument("--max-new-tokens", type=int, default=32, help="tokens generated per prompt (default 32)")
    p.add_argument("--tolerance", type=float,
                   help="largest max|Δ| / max|act REF| per stage (default by dtype: "
                        + ", ".join(f"{k} {v:g}" for k, v in TOLERANCES.items()) + ")")
    p.add_argument("--json", metavar="OUT.json", help="also write the report's data as JSON")
    args = p.parse_args(argv)
    if args.json and not Path(args.json).expanduser().resolve().parent.is_dir():
        p.error(f"cannot write --json {args.json}: its folder does not exist")
    return args


def main(argv=None) -> int:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    args = parse_args(argv)
    try:
        result = compare(args.model, against=args.against, dtype=args.dtype, prompts=read_prompts(args.prompts),
                         max_new_tokens=args.max_new_tokens, tolerance=args.tolerance, tokenizer=args.tokenizer)
    except BadInput as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(render(result))
    if args.json:
        write_json(Path(args.json).expanduser(), to_json(result), sort_keys=False)
    return result["exit_status"]


if __name__ == "__main__":
    sys.exit(main())
