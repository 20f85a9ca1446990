"""T5Config: every number that shapes a T5 model, read from and written to Hugging Face's config.json.

The field names are Hugging Face's, so a config.json from the hub maps onto this class one to one.
The T5 family differs only in these numbers and a few switches:

    variant        feed_forward_proj  lm_head              output rescale  position bias
    T5 v1.0        relu               tied to embedding    d_model**-0.5   first layer only
    T5 v1.1/flan   gated-gelu         separate             none            first layer only
    mT5            gated-gelu         separate             none            first layer only (vocab 250112)
    umT5           gated-gelu         separate             none            every layer       (model_type "umt5")
    byT5           gated-gelu         separate             none            first layer only (vocab 384, deep encoder)
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

# Activations a config may name, as `feed_forward_proj` = "<act>" or "gated-<act>" (see model.py: ACTIVATIONS).
KNOWN_ACTIVATIONS = ("relu", "gelu", "gelu_new", "gelu_pytorch_tanh", "silu", "swish")

MODEL_TYPES = {  # model_type in config.json -> the transformers class that reads the same folder
    "t5": "T5ForConditionalGeneration",
    "mt5": "MT5ForConditionalGeneration",
    "umt5": "UMT5ForConditionalGeneration",
}

# Known sizes, so a model can be built without a file. flan-T5 = T5 v1.1 (LM-adapted) shapes.
FLAN_T5_SIZES = {  # name: (d_model, d_ff, num_heads, num_layers)   (d_kv is 64 for all)
    "small": (512, 1024, 6, 8),
    "base": (768, 2048, 12, 12),
    "large": (1024, 2816, 16, 24),
    "xl": (2048, 5120, 32, 24),
    "xxl": (4096, 10240, 64, 24),
}


class ConfigError(ValueError):
    """A config (a file or arguments) that cannot describe a T5 model."""


@dataclass
class T5Config:
    vocab_size: int = 32128  # rows of the embedding; the tokenizer may use fewer (32100 for T5)
    d_model: int = 512  # width of the residual stream
    d_kv: int = 64  # width of one attention head; num_heads * d_kv may differ from d_model
    d_ff: int = 2048  # hidden width of the feed-forward network
    num_layers: int = 6  # encoder blocks
    num_decoder_layers: int | None = None  # decoder blocks (None: same as the encoder)
    num_heads: int = 8
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    dropout_rate: float = 0.1
    layer_norm_epsilon: float = 1e-6
    initializer_factor: float = 1.0
    feed_forward_proj: str = "relu"  # "relu" (v1.0) or "gated-gelu" (v1.1, flan-T5, mT5, umT5, byT5)
    dense_act_fn: str | None = None  # derived from feed_forward_proj unless config.json names it
    tie_word_embeddings: bool = True  # lm_head shares the embedding matrix (T5 v1.0)
    scale_decoder_outputs: bool | None = None  # multiply decoder output by d_model**-0.5 (None: same as tied)
    model_type: str = "t5"  # "t5", "mt5" or "umt5" (umT5 has a position bias in every layer)
    pad_token_id: int = 0
    eos_token_id: int = 1
    decoder_start_token_id: int = 0
    extra: dict = field(default_factory=dict, repr=False)  # other config.json keys, written back on save

    def __post_init__(self):
        self.check_types()
        if self.num_decoder_layers is None:
            self.num_decoder_layers = self.num_layers
        if self.scale_decoder_outputs is None:
            self.scale_decoder_outputs = self.tie_word_embeddings and self.model_type != "mt5"
        if self.dense_act_fn is None:
            act = self.feed_forward_proj.split("-")[-1]
            # Hugging Face keeps "gated-gelu" on the tanh approximation (gelu_new), as the original T5 code had it.
            self.dense_act_fn = "gelu_new" if self.feed_forward_proj == "gated-gelu" else act
        self.validate()

    # --- derived switches ---------------------------------------------------------------------
    @property
    def is_gated(self) -> bool:
        return self.feed_forward_proj.startswith("gated-")

    @property
    def position_bias_in_every_layer(self) -> bool:
        return self.model_type == "umt5"

    @property
    def inner_dim(self) -> int:
        return self.num_heads * self.d_kv

    def check_types(self):
        """Each field of the right kind (a config.json can hold anything), before anything is derived from it."""
        for f in dataclasses.fields(self):
            value, kind = getattr(self, f.name), str(f.type).split(" ")[0]  # "int | None" -> "int"
            if f.name == "extra" or (value is None and "None" in str(f.type)):
                continue
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            ok = {"bool": isinstance(value, bool), "int": number and isinstance(value, int),
                  "float": number and math.isfinite(value), "str": isinstance(value, str)}[kind]
            if not ok:
                words = {"bool": "true or false", "int": "an integer", "float": "a finite number", "str": "a string"}
                raise ConfigError(f"{f.name} must be {words[kind]}, got {value!r}")

    def validate(self):
        parts = self.feed_forward_proj.split("-")
        if not (len(parts) == 1 or (len(parts) == 2 and parts[0] == "gated")) or parts[-1] not in KNOWN_ACTIVATIONS:
            raise ConfigError(
                f"feed_forward_proj={self.feed_forward_proj!r} is not supported: use '<act>' or 'gated-<act>' "
                f"with <act> one of {', '.join(KNOWN_ACTIVATIONS)}"
            )
        if self.dense_act_fn not in KNOWN_ACTIVATIONS:
            raise ConfigError(f"dense_act_fn={self.dense_act_fn!r} is not one of {', '.join(KNOWN_ACTIVATIONS)}")
        if self.model_type not in MODEL_TYPES:
            raise ConfigError(f"model_type={self.model_type!r} is not a T5 model type ({', '.join(MODEL_TYPES)})")
        for name in ("vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_decoder_layers", "num_heads",
                     "relative_attention_num_buckets", "relative_attention_max_distance"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.relative_attention_num_buckets < 4:
            raise ConfigError("relative_attention_num_buckets must be at least 4")
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ConfigError(f"dropout_rate must be in [0, 1), got {self.dropout_rate!r}")

    # --- named configs --------------------------------------------------------------------------
    @classmethod
    def flan_t5(cls, size: str = "small", **overrides) -> "T5Config":
        """The shape of google/flan-t5-{small,base,large,xl,xxl}."""
        if size not in FLAN_T5_SIZES:
            raise ConfigError(f"unknown flan-T5 size {size!r}; known: {', '.join(FLAN_T5_SIZES)}")
        d_model, d_ff, heads, layers = FLAN_T5_SIZES[size]
        return cls(**{**dict(vocab_size=32128, d_model=d_model, d_ff=d_ff, d_kv=64, num_heads=heads, num_layers=layers,
                             feed_forward_proj="gated-gelu", tie_word_embeddings=False), **overrides})

    # --- config.json ----------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, raw: dict, source: str = "config") -> "T5Config":
        """Read a Hugging Face config dict. `source` names the file in error messages."""
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        required = ("vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_heads")
        missing = [k for k in required if k not in raw]
        if missing:
            raise ConfigError(f"{source} lacks the field(s) {', '.join(missing)} needed to build a T5 model")
        model_type = raw.get("model_type", "t5")
        if model_type not in MODEL_TYPES:
            raise ConfigError(f"{source} describes a {model_type!r} model, not a T5 model ({', '.join(MODEL_TYPES)})")
        kwargs = {k: v for k, v in raw.items() if k in names}
        if kwargs.get("decoder_start_token_id") is None:
            kwargs["decoder_start_token_id"] = raw.get("pad_token_id", 0) or 0
        tied = raw.get("tie_word_embeddings") is not False
        # Hugging Face's rule: the rescale follows the file's tie flag (absent = tied = T5 v1.0) unless the
        # file states it; mT5 never rescales. Whether lm_head is really tied is decided by the weights file.
        if "scale_decoder_outputs" not in raw:
            kwargs["scale_decoder_outputs"] = tied and model_type != "mt5"
        kwargs["tie_word_embeddings"] = tied
        extra = {k: v for k, v in raw.items() if k not in names}
        try:
            return cls(**kwargs, extra=extra)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None
        except TypeError as e:
            raise ConfigError(f"{source}: {e}") from None

    @classmethod
    def from_json_file(cls, path) -> "T5Config":
        path = Path(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path} does not exist") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path} is not valid JSON ({e})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path} holds a JSON {type(raw).__name__}, not an object of config fields")
        return cls.from_dict(raw, source=str(path))

    def to_dict(self) -> dict:
        """A config dict that both minit5 and transformers read back to the same model."""
        out = dict(self.extra)
        for f in dataclasses.fields(self):
            if f.name != "extra":
                out[f.name] = getattr(self, f.name)
        out["architectures"] = [MODEL_TYPES[self.model_type]]
        out["is_gated_act"] = self.is_gated
        out["is_encoder_decoder"] = True
        return dict(sorted(out.items()))

    def save(self, path):
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
