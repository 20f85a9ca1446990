"""Loading and saving Hugging Face-format checkpoints.

A checkpoint folder holds config.json and the weights as model.safetensors, as shards listed in
model.safetensors.index.json, or (older) as pytorch_model.bin. minit5 names its modules for what they do
rather than by position (`blocks.3.ffn.up` instead of `block.3.layer.1.DenseReluDense.wi_1`); NAME_TABLE
below is the one place that relates the two, and docs/weights.md prints it as a table.

Loading never holds two copies of the weights: the model is built on the "meta" device (shapes, no memory),
every tensor is checked against the file headers before a byte is read, then read one at a time, cast to the
requested dtype and put in place.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import zipfile
from pathlib import Path

import torch

from .config import ConfigError, T5Config
from .model import T5

# minit5 parameter name (a regex)                              Hugging Face parameter name
NAME_TABLE = [
    (r"embed\.weight",                                          "shared.weight"),
    (r"lm_head\.weight",                                        "lm_head.weight"),
    (r"(encoder|decoder)\.blocks\.(\d+)\.position_bias\.table\.weight",
                                                                "{0}.block.{1}.layer.0.SelfAttention.relative_attention_bias.weight"),
    (r"(encoder|decoder)\.blocks\.(\d+)\.self_attn_norm\.weight", "{0}.block.{1}.layer.0.layer_norm.weight"),
    (r"(encoder|decoder)\.blocks\.(\d+)\.self_attn\.([qkvo])\.weight", "{0}.block.{1}.layer.0.SelfAttention.{2}.weight"),
    (r"decoder\.blocks\.(\d+)\.cross_attn_norm\.weight",         "decoder.block.{0}.layer.1.layer_norm.weight"),
    (r"decoder\.blocks\.(\d+)\.cross_attn\.([qkvo])\.weight",    "decoder.block.{0}.layer.1.EncDecAttention.{1}.weight"),
    (r"encoder\.blocks\.(\d+)\.ffn_norm\.weight",                "encoder.block.{0}.layer.1.layer_norm.weight"),
    (r"decoder\.blocks\.(\d+)\.ffn_norm\.weight",                "decoder.block.{0}.layer.2.layer_norm.weight"),
    (r"encoder\.blocks\.(\d+)\.ffn\.(gate|up|down)\.weight",     "encoder.block.{0}.layer.1.DenseReluDense.{1}.weight"),
    (r"decoder\.blocks\.(\d+)\.ffn\.(gate|up|down)\.weight",     "decoder.block.{0}.layer.2.DenseReluDense.{1}.weight"),
    (r"(encoder|decoder)\.final_norm\.weight",                   "{0}.final_layer_norm.weight"),
]
# The feed-forward matrices: gated FFNs (v1.1 and later) have wi_0 (gate) and wi_1 (up); ReLU ones (v1.0) just wi.
FFN_NAMES = {"gate": "wi_0", "up": "wi_1", "down": "wo"}
FFN_NAMES_UNGATED = {"up": "wi", "down": "wo"}

# Keys that may appear in a file and carry nothing minit5 needs: copies of the shared embedding, and a
# cross-attention position bias that old checkpoints store but T5 never uses.
IGNORED_KEYS = re.compile(r"(encoder|decoder)\.embed_tokens\.weight|"
                          r"decoder\.block\.0\.layer\.1\.EncDecAttention\.relative_attention_bias\.weight")

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
HUB_FILES = ["config.json", "*.safetensors", "*.safetensors.index.json", "tokenizer.json", "spiece.model",
             "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"]


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded as it is; the message names the file and the problem."""


def hf_name(name: str, config: T5Config) -> str:
    """minit5 parameter name -> Hugging Face parameter name."""
    for pattern, template in NAME_TABLE:
        match = re.fullmatch(pattern, name)
        if match:
            parts = list(match.groups())
            if ".ffn." in name:
                parts[-1] = (FFN_NAMES if config.is_gated else FFN_NAMES_UNGATED)[parts[-1]]
            return template.format(*parts)
    raise KeyError(f"no Hugging Face name for minit5 parameter {name!r}")


# --------------------------------------------------------------------------------------------------
# Finding the folder
# --------------------------------------------------------------------------------------------------
def resolve_path(name_or_path, what: str = "model") -> Path:
    """A local folder as is; otherwise a Hugging Face hub id (like google/flan-t5-small), downloaded once
    through huggingface_hub into its cache."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not path.is_dir():
            raise CheckpointError(f"{path} is a file; pass the {what} folder that holds config.json")
        return path
    text = str(name_or_path)
    looks_like_hub_id = re.fullmatch(r"[\w.-]+/[\w.-]+", text) is not None and not text.startswith((".", "/", "~"))
    if not looks_like_hub_id:
        raise CheckpointError(f"{what} folder {path} does not exist")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise CheckpointError(
            f"{text} is not a local folder, and fetching it from the Hugging Face hub needs huggingface_hub "
            f"(pip install huggingface_hub); or download {text} elsewhere and pass its folder") from None
    try:
        return Path(snapshot_download(text, allow_patterns=HUB_FILES))
    except Exception as e:  # offline, unknown repo, gated repo, ...: all end the same way for the user
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"could not fetch {text} from the Hugging Face hub ({reason}); on a machine with internet run "
            f"`hf download {text} --local-dir DIR`, copy DIR here and pass it instead") from None


# --------------------------------------------------------------------------------------------------
# Reading weight files: a uniform view of "name -> shape, and a way to read that one tensor"
# --------------------------------------------------------------------------------------------------
class _SafetensorsFile:
    """A safetensors file. A tensor kept in its stored dtype is memory-mapped (private, copy-on-write): loading
    copies nothing and pages are read on first use. One that will be converted is read into fresh memory
    (pread), so the converted copy is the only one held."""
    DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}

    def __init__(self, path: Path):
        from safetensors import SafetensorError, safe_open
        self.path = path
        try:
            try:
                self.copying = safe_open(str(path), framework="pt", backend="pread")
                self.mapping = safe_open(str(path), framework="pt", backend="mmap")
            except TypeError:  # older safetensors: one backend (mmap)
                self.copying = self.mapping = safe_open(str(path), framework="pt")
            slices = {k: self.copying.get_slice(k) for k in self.copying.keys()}
            self.shapes = {k: tuple(s.get_shape()) for k, s in slices.items()}
            self.dtypes = {k: self.DTYPES.get(s.get_dtype()) for k, s in slices.items()}
        except (SafetensorError, OSError) as e:
            raise CheckpointError(f"{path} is not a readable safetensors file (truncated or corrupt?): {e}") from None

    def read(self, key, dtype=None):
        """The tensor `key`; dtype is the one the caller will convert it to."""
        handle = self.mapping if dtype is None or dtype == self.dtypes[key] else self.copying
        try:
            return handle.get_tensor(key)
        except Exception as e:
            raise CheckpointError(f"{self.path}: reading {key} failed (truncated or corrupt?): {e}") from None


class _TorchBinFile:
    def __init__(self, path: Path):
        # Files saved by torch >= 1.6 are zip archives and can be memory-mapped; older ones (some early hub
        # checkpoints) cannot, and are read whole.
        mmap = zipfile.is_zipfile(path)
        try:  # weights_only: a .bin is a pickle, and a pickle can run code; this refuses anything but tensors
            self.tensors = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except pickle.UnpicklingError as e:
            found = re.search(r"unsupported GLOBAL (\S+)", str(e))
            raise CheckpointError(
                f"{path} holds more than tensors{f' (it names {found.group(1)})' if found else ''}: loading it would "
                f"run code from the file, which minit5 refuses; if you trust its source, convert it to safetensors "
                f"with transformers") from None
        except Exception as e:
            raise CheckpointError(f"{path} is not a readable PyTorch weights file (truncated or corrupt?): {e}") from None
        if not isinstance(self.tensors, dict) or not all(isinstance(t, torch.Tensor) for t in self.tensors.values()):
            raise CheckpointError(f"{path} does not hold a dict of tensors")
        self.path = path
        self.shapes = {k: tuple(t.shape) for k, t in self.tensors.items()}

    def read(self, key, dtype=None):
        return self.tensors[key]


def _open_weights(folder: Path) -> dict:
    """Every tensor in the folder's weights: {hf_name: opened file that holds it}."""
    for filename in WEIGHT_FILES:
        path = folder / filename
        if not path.exists():
            continue
        opener = _SafetensorsFile if "safetensors" in filename else _TorchBinFile
        if not filename.endswith(".index.json"):
            f = opener(path)
            return {key: f for key in f.shapes}
        try:
            weight_map = json.loads(path.read_text(encoding="utf-8"))["weight_map"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
            raise CheckpointError(f"{path} is not a valid shard index (it needs a 'weight_map'): {e}") from None
        shards = {}
        for shard in sorted(set(weight_map.values())):
            if not (folder / shard).exists():
                raise CheckpointError(f"{path} lists the shard {shard}, which is missing from {folder}")
            shards[shard] = opener(folder / shard)
        located = {}
        for key, shard in weight_map.items():
            if key not in shards[shard].shapes:
                raise CheckpointError(f"{path} puts {key} in {shard}, but that file does not hold it")
            located[key] = shards[shard]
        return located
    raise CheckpointError(f"{folder} holds no weights file (looked for {', '.join(WEIGHT_FILES)})")


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------
def load_model(name_or_path, dtype=torch.float32, device="cpu") -> T5:
    if dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise CheckpointError(f"dtype must be torch.float32, torch.bfloat16 or torch.float16, got {dtype}")
    folder = resolve_path(name_or_path)
    config_path = folder / "config.json"
    if not config_path.exists():
        raise CheckpointError(f"{folder} has no config.json")
    try:
        config = T5Config.from_json_file(config_path)
    except ConfigError as e:
        raise CheckpointError(str(e)) from None
    files = _open_weights(folder)

    # Tied or not is decided by the weights, as transformers does: a file with its own lm_head that differs
    # from the embedding is untied (flan-T5), one without lm_head is tied (T5 v1.0) whatever config.json says.
    early = {}  # tensors read to decide, kept so that nothing is read twice
    if "lm_head.weight" in files and "shared.weight" in files:
        early = {key: files[key].read(key, dtype) for key in ("shared.weight", "lm_head.weight")}
        if torch.equal(early["lm_head.weight"], early["shared.weight"]):
            del early["lm_head.weight"]
    config.tie_word_embeddings = "lm_head.weight" not in early

    with torch.device("meta"), skip_random_init():  # shapes only: no memory, no random numbers
        model = T5(config)
    expected = {hf_name(name, config): (name, tuple(p.shape)) for name, p in model.state_dict().items()}
    present = {k for k in files if not (IGNORED_KEYS.fullmatch(k) or (k == "lm_head.weight" and config.tie_word_embeddings))}
    missing = sorted(set(expected) - present)
    unexpected = sorted(present - set(expected))
    where = next(iter(files.values())).path if files else folder
    if missing:
        raise CheckpointError(f"{where} lacks the parameter(s) {_few(missing)} that this config.json needs")
    if unexpected:
        raise CheckpointError(f"{where} holds parameter(s) {_few(unexpected)} that this config.json does not describe")
    for key, (name, shape) in expected.items():
        if files[key].shapes[key] != shape:
            raise CheckpointError(f"{files[key].path}: {key} has shape {list(files[key].shapes[key])}, "
                                  f"but config.json implies {list(shape)}")

    state = {}
    for key, (name, _) in expected.items():
        # float16 keeps the FFN output matrices in fp32, as transformers does: their products overflow fp16.
        target = torch.float32 if (dtype == torch.float16 and name.endswith("ffn.down.weight")) else dtype
        tensor = early.pop(key) if key in early else files[key].read(key, target)
        state[name] = tensor.to(device=device, dtype=target)
        del tensor
    model.load_state_dict(state, assign=True, strict=True)
    return model.eval()


@contextlib.contextmanager
def skip_random_init():
    """nn.Embedding and nn.Linear fill themselves with random numbers when built. On the meta device that is
    wasted work, and torch's meta version of normal_ imports sympy (~70 MB, ~1 s): skip it while loading."""
    names = ("normal_", "uniform_", "kaiming_uniform_", "trunc_normal_")
    saved = {name: getattr(torch.nn.init, name) for name in names}
    try:
        for name in names:
            setattr(torch.nn.init, name, lambda tensor, *args, **kwargs: tensor)
        yield
    finally:
        for name, fn in saved.items():
            setattr(torch.nn.init, name, fn)


def _few(names, limit=5):
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


# --------------------------------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------------------------------
def _parse_size(size) -> int:
    if isinstance(size, int):
        return size
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]?B)\s*", str(size).upper())
    if not match:
        raise ValueError(f"max_shard_size must be bytes or like '5GB', got {size!r}")
    return int(float(match.group(1)) * {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9}[match.group(2)])


def atomic_write(path: Path, write) -> None:
    """write(tmp_path) then rename over path, so a crash leaves the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # as a plain open() would: some writers (safetensors) create files 0600
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def write_json(path: Path, obj, sort_keys: bool = True) -> None:
    """obj as indented JSON, written atomically (config.json, tokenizer files, the trainer's run.json)."""
    text = json.dumps(obj, indent=2, sort_keys=sort_keys, ensure_ascii=False) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def save_model(model: T5, out_dir, max_shard_size="5GB") -> None:
    from safetensors.torch import save_file
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = model.config
    tensors = {hf_name(name, config): t.detach().contiguous().cpu() for name, t in model.state_dict().items()}

    limit, shards, current, size = _parse_size(max_shard_size), [], {}, 0
    for key in sorted(tensors):
        nbytes = tensors[key].numel() * tensors[key].element_size()
        if current and size + nbytes > limit:
            shards.append(current)
            current, size = {}, 0
        current[key] = tensors[key]
        size += nbytes
    shards.append(current)

    if len(shards) == 1:
        names = ["model.safetensors"]
    else:
        names = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    for name, shard in zip(names, shards):
        atomic_write(out_dir / name, lambda tmp, shard=shard: save_file(shard, str(tmp), metadata={"format": "pt"}))
    if len(shards) > 1:
        total = sum(t.numel() * t.element_size() for t in tensors.values())
        write_json(out_dir / "model.safetensors.index.json", {
            "metadata": {"total_size": total},
            "weight_map": {key: name for name, shard in zip(names, shards) for key in shard}})
    # Weight files of an earlier save in another layout would shadow or confuse this one.
    for stale in out_dir.iterdir():
        if stale.name not in names and (re.fullmatch(r"model(-\d+-of-\d+)?\.safetensors", stale.name)
                                        or stale.name.startswith("pytorch_model")
                                        or (len(shards) == 1 and stale.name == "model.safetensors.index.json")):
            stale.unlink()

    config_dict = config.to_dict()
    config_dict["dtype"] = str(model.dtype).removeprefix("torch.")
    write_json(out_dir / "config.json", config_dict)
    write_json(out_dir / "generation_config.json", {
        "decoder_start_token_id": config.decoder_start_token_id, "eos_token_id": config.eos_token_id,
        "pad_token_id": config.pad_token_id})
