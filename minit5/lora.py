"""LoRA: fine-tune a few small matrices beside frozen weights. The files are the ones Hugging Face peft writes.

A linear layer computes y = W x with W: (out, in). Fine-tuning changes W by some ΔW. LoRA (Hu et al., 2021) bets
that the useful ΔW has low rank, and writes it as the product of two thin matrices:

    y = W x + (alpha / r) · B A x          A: (r, in), B: (out, r), r much smaller than in and out

Only A and B train; W stays frozen. For flan-T5-small with r = 8 on every q and v that is 344,064 numbers instead
of 77 million, so the optimizer state (two numbers per trained parameter for AdamW) shrinks to almost nothing and
a checkpoint of the run is a few megabytes.

    x ──► W (frozen) ──────────────────────► + ──► y
    └───► dropout ──► A (r×in) ──► B (out×r) ──► × alpha/r ──┘

- B starts at zero, A random (Kaiming-uniform, as peft and nn.Linear do): B A = 0, so a fresh adapter leaves the
  model exactly as it was, and training starts from the pretrained model. (A zero A as well would leave both with
  zero gradients: dL/dB = g (A x)ᵀ = 0 and dL/dA = Bᵀ g xᵀ = 0, and nothing would ever train.)
- alpha / r keeps the update's size about the same when you change r (rslora: alpha / sqrt(r), better for big r).
- Merging: W + (alpha / r) B A is an ordinary matrix of W's shape. merge_lora folds the adapter into W, after
  which the model is a plain T5 again: no extra cost per token, and it saves as a plain checkpoint.

minit5's module names describe what a layer does (`blocks.0.self_attn.q`, `ffn.up`); peft and transformers use
T5's original names (`block.0.layer.0.SelfAttention.q`, `DenseReluDense.wi_1`). Targets are given in the Hugging
Face names, matched as peft matches them, and adapter files use peft's keys, so an adapter moves freely between
minit5 and `PeftModel.from_pretrained(T5ForConditionalGeneration..., adapter_dir)`. The name table lives in
minit5/checkpoint.py.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .checkpoint import atomic_write, hf_name, write_json
from .model import T5, Attention, FeedForward

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
OLD_WEIGHTS_FILE = "adapter_model.bin"  # what peft wrote before safetensors
KEY_PREFIX = "base_model.model."  # peft's prefix: PeftModel.base_model (LoraModel) .model (the transformers model)
ALL_TARGETS = ("q", "k", "v", "o", "wi_0", "wi_1", "wi", "wo")


class AdapterError(ValueError):
    """An adapter that does not fit this model or uses a feature minit5 does not have; names the file and the key."""


# --------------------------------------------------------------------------------------------------
# The layer
# --------------------------------------------------------------------------------------------------
class LoRALinear(nn.Linear):
    """nn.Linear plus a low-rank update: y = W x + scaling · B(A(dropout(x))).

    It takes over the wrapped layer's weight (the same Parameter, so the name `...q.weight` and every reference to
    it stay valid) and adds `lora_A` and `lora_B`, named as in peft. It is still an nn.Linear, so code that reads
    `.weight` (float16 casts, the optimizer's parameter groups) sees the frozen base weight."""

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0, rslora: bool = False):
        nn.Module.__init__(self)  # not nn.Linear.__init__: that would allocate and initialise a new weight
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight, self.bias = base.weight, base.bias  # T5's linears have no bias; kept for generality
        factory = dict(dtype=base.weight.dtype, device=base.weight.device)
        self.lora_A = nn.Linear(base.in_features, r, bias=False, **factory)  # (r, in)
        self.lora_B = nn.Linear(r, base.out_features, bias=False, **factory)  # (out, r)
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.r, self.alpha, self.rslora = r, alpha, rslora
        self.scaling = alpha / math.sqrt(r) if rslora else alpha / r
        if base.weight.device.type != "meta":
            # as peft: A Kaiming-uniform (the same as nn.Linear's own default), B zero, so B A = 0 at the start
            nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
            nn.init.zeros_(self.lora_B.weight)

    def forward(self, x):  # x: (..., in) -> (..., out)
        return F.linear(x, self.weight, self.bias) + self.lora_B(self.lora_A(self.lora_dropout(x))) * self.scaling

    def delta_weight(self) -> torch.Tensor:
        """scaling · B A: (out, in), the change this adapter makes to W, computed in fp32."""
        return (self.lora_B.weight.float() @ self.lora_A.weight.float()) * self.scaling

    def merged_weight(self) -> torch.Tensor:
        """W + scaling · B A, a new tensor in W's dtype (W itself is left alone)."""
        return (self.weight.float() + self.delta_weight()).to(self.weight.dtype)

    def decode_weight(self) -> torch.Tensor:
        """What minit5/fast.py multiplies by (its contract with the layers): the merged weight, so a fast decoding
        step costs what it costs without the adapter. fast.py makes it again after A or B train."""
        return self.merged_weight().detach()

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, r={self.r}, alpha={self.alpha}, scaling={self.scaling:g}"


# --------------------------------------------------------------------------------------------------
# Which layers: Hugging Face module names, matched as peft matches them
# --------------------------------------------------------------------------------------------------
def adaptable_layers(model: T5) -> dict[str, tuple[str, nn.Linear]]:
    """Every linear layer an adapter can wrap: {Hugging Face module name: (minit5 module name, layer)}.

    These are the attention projections and the feed-forward matrices of every block. (The output layer is left
    out: minit5 uses its weight directly, not by calling the layer.)"""
    layers = {}
    for name, module in model.named_modules():
        if isinstance(module, (Attention, FeedForward)):
            for child_name, child in module.named_children():
                if isinstance(child, nn.Linear):
                    minit5_name = f"{name}.{child_name}"
                    hf = hf_name(minit5_name + ".weight", model.config).removesuffix(".weight")
                    layers[hf] = (minit5_name, child)
    return layers


def matches(target_modules, hf_module_name: str) -> bool:
    """peft's rule: a regex string must match the whole name; a list entry matches the name or its last parts
    ("q" matches "encoder.block.0.layer.0.SelfAttention.q", and so does "SelfAttention.q")."""
    if isinstance(target_modules, str):
        if target_modules.lower() == "all-linear":
            return True
        return re.fullmatch(target_modules, hf_module_name) is not None
    return any(hf_module_name == t or hf_module_name.endswith("." + t) for t in target_modules)


def unmatched_targets(targets, layers) -> list:
    """The targets (each list entry, or the one regex) that match none of these Hugging Face module names."""
    entries = [targets] if isinstance(targets, str) else targets
    return [t for t in entries if not any(matches(t if isinstance(targets, str) else [t], hf) for hf in layers)]


def layer_kinds(layers) -> str:
    return ", ".join(sorted({hf.rsplit(".", 1)[1] for hf in layers}))


def lora_layers(model) -> dict[str, LoRALinear]:
    """The adapted layers: {minit5 module name: LoRALinear}."""
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}


def has_lora(model) -> bool:
    return any(isinstance(m, LoRALinear) for m in model.modules())


# --------------------------------------------------------------------------------------------------
# Adding, merging
# --------------------------------------------------------------------------------------------------
def check_lora_options(r, alpha, dropout, targets):
    """add_lora's options, checked before any layer changes (train.py checks its --lora-* flags with this too,
    before it loads a model). targets: a list of names, or one string (a regex, or "all-linear")."""
    if not (isinstance(r, int) and r >= 1):
        raise AdapterError(f"LoRA r must be a positive integer (the rank), got {r!r}")
    if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha > 0):
        raise AdapterError(f"LoRA alpha must be a positive number, got {alpha!r}")
    if not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
        raise AdapterError(f"LoRA dropout must be in [0, 1), got {dropout!r}")
    if not isinstance(targets, str) and not targets:
        raise AdapterError("LoRA targets names no layer; name some of " + ", ".join(ALL_TARGETS))


def add_lora(model: T5, r: int = 8, alpha: float = 16, targets=("q", "v"), dropout: float = 0.0,
             rslora: bool = False, freeze: bool = True) -> T5:
    """Wrap the matching linear layers of `model` in LoRALinear, in place; with freeze, only the adapters train
    (every other parameter gets requires_grad=False, as peft's get_peft_model does). Returns the model.

    targets: Hugging Face module names (q, k, v, o, wi_0, wi_1, wi, wo, or a longer suffix such as
    "EncDecAttention.q"), or one regex string matched against whole names, or "all-linear"."""
    if has_lora(model):
        raise AdapterError("this model already has LoRA adapters; merge_lora(model) first, or start from the base")
    targets = targets if isinstance(targets, str) else list(targets)
    check_lora_options(r, alpha, dropout, targets)
    layers = adaptable_layers(model)
    chosen = {hf: entry for hf, entry in layers.items() if matches(targets, hf)}
    unmatched = unmatched_targets(targets, layers)
    if unmatched:
        raise AdapterError(f"LoRA target(s) {', '.join(map(repr, unmatched))} match no layer of this model; "
                           f"its layers are named {layer_kinds(layers)}")
    if freeze:
        for p in model.parameters():
            p.requires_grad_(False)
    for hf, (name, linear) in chosen.items():
        parent_name, _, child_name = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child_name, LoRALinear(linear, r, alpha, dropout, rslora))
    # kept on the model for save_adapter (T5.lora_config: not a parameter, not in the state dict)
    model.lora_config = dict(r=r, alpha=alpha, dropout=dropout, rslora=rslora,
                             targets=targets if isinstance(targets, str) else sorted(targets))
    return model


@torch.no_grad()
def merge_lora(model: T5) -> T5:
    """Fold every adapter into its weight (W ← W + scaling · B A) and put plain nn.Linear layers back, in place.
    The model is then an ordinary T5: it decodes at full speed and save_pretrained writes a plain checkpoint."""
    for name, layer in lora_layers(model).items():
        layer.weight.copy_(layer.merged_weight())
        plain = nn.Linear.__new__(nn.Linear)  # an nn.Linear around the existing Parameter, now holding W + ΔW
        nn.Module.__init__(plain)
        plain.in_features, plain.out_features = layer.in_features, layer.out_features
        plain.weight, plain.bias = layer.weight, layer.bias
        parent_name, _, child_name = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child_name, plain)
    model.lora_config = None
    return model


def trainable_summary(model) -> str:
    """The line peft's print_trainable_parameters prints: 'trainable params: ... || all params: ... || trainable%'."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return f"trainable params: {trainable:,} || all params: {total:,} || trainable%: {100 * trainable / total:.4f}"


# --------------------------------------------------------------------------------------------------
# Files: peft's adapter_config.json and adapter_model.safetensors
# --------------------------------------------------------------------------------------------------
def _peft_key(minit5_name: str, matrix: str, config) -> str:
    """encoder.blocks.0.self_attn.q + lora_A -> base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_A.weight"""
    return KEY_PREFIX + hf_name(minit5_name + ".weight", config).removesuffix(".weight") + f".{matrix}.weight"


def adapter_state(model: T5) -> dict[str, torch.Tensor]:
    """The adapter's tensors under peft's key names."""
    state = {}
    for name, layer in lora_layers(model).items():
        for matrix in ("lora_A", "lora_B"):
            state[_peft_key(name, matrix, model.config)] = getattr(layer, matrix).weight
    return state


def save_adapter(model: T5, out_dir, base_model_name_or_path: str | None = None) -> None:
    """Write adapter_config.json and adapter_model.safetensors as peft does (each atomically)."""
    from safetensors.torch import save_file
    if not has_lora(model):
        raise AdapterError("this model has no LoRA adapters to save; add_lora(model, ...) first")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = model.lora_config
    tensors = {k: t.detach().contiguous().cpu() for k, t in adapter_state(model).items()}
    atomic_write(out_dir / WEIGHTS_FILE, lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"}))
    alpha = settings["alpha"]
    write_json(out_dir / CONFIG_FILE, {
        # the fields peft reads; the ones left out take peft's defaults
        "peft_type": "LORA",
        "task_type": "SEQ_2_SEQ_LM",
        "base_model_name_or_path": base_model_name_or_path,
        "r": settings["r"],
        "lora_alpha": int(alpha) if float(alpha).is_integer() else alpha,
        "lora_dropout": settings["dropout"],
        "target_modules": settings["targets"],
        "use_rslora": settings["rslora"],
        "use_dora": False,
        "bias": "none",
        "fan_in_fan_out": False,
        "init_lora_weights": True,
        "inference_mode": True,
        "modules_to_save": None,
        "layers_to_transform": None,
        "layers_pattern": None,
        "rank_pattern": {},
        "alpha_pattern": {},
        "revision": None,
    })


# Options of peft's LoraConfig that change what an adapter computes, with the value minit5 handles. An adapter
# file with another value is refused (by name) rather than loaded into something that computes differently.
UNSUPPORTED = {
    "use_dora": (False, "DoRA (use_dora)"),
    "bias": ("none", "trained biases (bias)"),
    "lora_bias": (False, "a bias on lora_B (lora_bias)"),
    "modules_to_save": (None, "fully trained extra modules (modules_to_save)"),
    "rank_pattern": ({}, "a rank per layer (rank_pattern)"),
    "alpha_pattern": ({}, "an alpha per layer (alpha_pattern)"),
    "layers_to_transform": (None, "adapting only some layers (layers_to_transform)"),
    "layer_replication": (None, "layer replication"),
    "exclude_modules": (None, "excluded modules (exclude_modules)"),
    "target_parameters": (None, "adapters on parameters (target_parameters)"),
    "trainable_token_indices": (None, "trainable tokens (trainable_token_indices)"),
    "use_qalora": (False, "QA-LoRA (use_qalora)"),
    "alora_invocation_tokens": (None, "activated LoRA (alora_invocation_tokens)"),
    "use_bdlora": (None, "block-diagonal LoRA (use_bdlora)"),
    "fan_in_fan_out": (False, "transposed weights (fan_in_fan_out)"),
}


def read_adapter_config(folder) -> dict:
    """adapter_config.json, checked: a LoRA adapter with options minit5 computes the same way as peft."""
    path = Path(folder) / CONFIG_FILE
    if not Path(folder).is_dir():
        raise AdapterError(f"adapter folder {folder} does not exist")
    if not path.exists():
        raise AdapterError(f"{folder} has no {CONFIG_FILE}; an adapter folder holds {CONFIG_FILE} and {WEIGHTS_FILE}")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AdapterError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(config, dict):
        raise AdapterError(f"{path} must hold a JSON object")
    if config.get("peft_type", "LORA") != "LORA":
        raise AdapterError(f"{path}: peft_type is {config['peft_type']!r}; minit5 loads LoRA adapters only")
    for key, (fine, what) in UNSUPPORTED.items():
        value = config.get(key, fine)
        if value and value != fine:  # false, null, {} and [] all mean "not used"
            raise AdapterError(f"{path}: {key} = {json.dumps(value)}; minit5's LoRA does not support {what}")
    r, alpha = config.get("r", 8), config.get("lora_alpha", 8)
    if not (isinstance(r, int) and r >= 1):
        raise AdapterError(f"{path}: r must be a positive integer, got {json.dumps(r)}")
    if not (isinstance(alpha, (int, float)) and alpha > 0):
        raise AdapterError(f"{path}: lora_alpha must be a positive number, got {json.dumps(alpha)}")
    targets = config.get("target_modules")
    if not targets or not isinstance(targets, (str, list)):
        raise AdapterError(f"{path}: target_modules must name the adapted layers, got {json.dumps(targets)}")
    return config


def _read_tensors(folder: Path) -> tuple[Path, dict]:
    path = folder / WEIGHTS_FILE
    if path.exists():
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            return path, load_file(str(path))
        except (SafetensorError, OSError) as e:
            raise AdapterError(f"{path} is not a readable safetensors file (truncated or corrupt?): {e}") from None
    path = folder / OLD_WEIGHTS_FILE
    if path.exists():
        try:  # weights_only: a .bin is a pickle, and a pickle can run code; this refuses anything but tensors
            return path, torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise AdapterError(f"{path} is not a readable PyTorch weights file (truncated or corrupt?): {e}") from None
    raise AdapterError(f"{folder} has no {WEIGHTS_FILE} (or {OLD_WEIGHTS_FILE})")


def load_adapter(model: T5, folder, freeze: bool = True) -> T5:
    """Attach the adapter in `folder` (written by peft or by minit5) to `model`, in place; returns the model.

    Everything is checked before the model is touched: the config's options, that each target matches a layer,
    that the file holds exactly the keys those layers need, and that every shape fits."""
    folder = Path(folder)
    config = read_adapter_config(folder)
    path, tensors = _read_tensors(folder)
    # Find out which keys the config implies, on a throwaway list of names (nothing is wrapped yet).
    layers = adaptable_layers(model)
    targets = config["target_modules"]
    for target in unmatched_targets(targets, layers):
        raise AdapterError(f"{folder / CONFIG_FILE}: target {target!r} matches no layer of this model "
                           f"(its layers are named {layer_kinds(layers)})")
    r = config.get("r", 8)
    expected = {}
    for hf, (name, linear) in layers.items():
        if matches(targets, hf):
            expected[f"{KEY_PREFIX}{hf}.lora_A.weight"] = (r, linear.in_features)
            expected[f"{KEY_PREFIX}{hf}.lora_B.weight"] = (linear.out_features, r)
    found = {k.replace(".default.", "."): k for k in tensors}  # some older files keep peft's adapter name
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing:
        raise AdapterError(f"{path} lacks {missing[0]}" + (f" and {len(missing) - 1} more keys" if len(missing) > 1
                           else "") + " that its config's target_modules imply for this model")
    if unexpected:
        raise AdapterError(f"{path} holds {unexpected[0]}" + (f" and {len(unexpected) - 1} more keys"
                           if len(unexpected) > 1 else "") + ", which its config's target_modules and this model "
                           "do not explain")
    for key, shape in expected.items():
        got = tuple(tensors[found[key]].shape)
        if got != shape:
            raise AdapterError(f"{path}: {key} has shape {list(got)}, but this model with r={r} needs {list(shape)} "
                               f"(an adapter for another model size?)")

    add_lora(model, r=r, alpha=config.get("lora_alpha", 8), targets=targets, dropout=config.get("lora_dropout", 0.0),
             rslora=bool(config.get("use_rslora", False)), freeze=freeze)
    with torch.no_grad():
        for name, layer in lora_layers(model).items():
            for matrix in ("lora_A", "lora_B"):
                weight = getattr(layer, matrix).weight
                weight.copy_(tensors[found[_peft_key(name, matrix, model.config)]].to(weight.dtype))
    return model
