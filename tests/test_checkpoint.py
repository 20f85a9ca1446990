"""Loading and saving Hugging Face-format folders: round trips, layouts, dtypes, memory and bad input."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from hf_models import VARIANTS, build_hf_model, hf_is_tied, load_hf, padded_batch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from minit5 import T5, T5Config
from minit5.checkpoint import CheckpointError

ROOT = Path(__file__).resolve().parents[1]


def tiny_config(**kw):
    return T5Config(**{**dict(vocab_size=120, d_model=32, d_ff=48, d_kv=8, num_heads=4, num_layers=2,
                              feed_forward_proj="gated-gelu", tie_word_embeddings=False, dropout_rate=0.0), **kw})


@pytest.fixture(scope="module")
def flan_folder(tmp_path_factory):
    return build_hf_model("flan-t5", tmp_path_factory.mktemp("flan"))[1]


def logits_of(model_or_hf, vocab_size, is_hf=False):
    input_ids, attention_mask, labels = padded_batch(vocab_size, seed=3)
    with torch.no_grad():
        if is_hf:
            return model_or_hf(input_ids=input_ids, attention_mask=attention_mask, labels=labels,
                               use_cache=False).logits
        return model_or_hf(input_ids, attention_mask=attention_mask, labels=labels)[0]


# ---------------------------------------------------------------- round trips
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_minit5_saved_folder_loads_in_transformers(variant, tmp_path):
    _, _, overrides, tied = VARIANTS[variant]
    model_type = {"mt5": "mt5", "umt5": "umt5"}.get(variant, "t5")
    config = tiny_config(**overrides, tie_word_embeddings=tied, model_type=model_type)
    torch.manual_seed(0)
    model = T5(config).eval()
    model.save_pretrained(tmp_path)
    hf = load_hf(variant, tmp_path)
    assert hf_is_tied(hf) == tied
    diff = (logits_of(model, config.vocab_size) - logits_of(hf, config.vocab_size, is_hf=True)).abs().max().item()
    assert diff <= 1e-4


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_transformers_saved_to_minit5_saved_again_is_byte_identical(variant, tmp_path):
    _, src = build_hf_model(variant, tmp_path / "hf")
    T5.from_pretrained(src).save_pretrained(tmp_path / "again")
    original, again = load_file(src / "model.safetensors"), load_file(tmp_path / "again" / "model.safetensors")
    assert sorted(original) == sorted(again)
    for key in original:
        assert original[key].dtype == again[key].dtype, key
        assert torch.equal(original[key], again[key]), key
    assert (src / "model.safetensors").read_bytes() == (tmp_path / "again" / "model.safetensors").read_bytes()
    # and the saved config still means the same model to transformers
    hf_again = load_hf(variant, tmp_path / "again")
    assert hf_is_tied(hf_again) == VARIANTS[variant][3]


def test_sharded_save_and_load(flan_folder, tmp_path):
    model = T5.from_pretrained(flan_folder)
    model.save_pretrained(tmp_path, max_shard_size="20KB")
    shards = sorted(p.name for p in tmp_path.glob("model-*.safetensors"))
    assert len(shards) >= 3 and not (tmp_path / "model.safetensors").exists()
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == set(shards)
    again = T5.from_pretrained(tmp_path)
    assert torch.equal(logits_of(model, 120), logits_of(again, 120))
    hf = load_hf("flan-t5", tmp_path)  # transformers reads minit5's shards too
    assert (logits_of(hf, 120, is_hf=True) - logits_of(model, 120)).abs().max().item() <= 1e-4
    # saving unsharded into the same folder removes the old shards instead of leaving two copies
    model.save_pretrained(tmp_path)
    assert not list(tmp_path.glob("model-*.safetensors")) and not (tmp_path / "model.safetensors.index.json").exists()


def test_pytorch_model_bin(flan_folder, tmp_path):
    (tmp_path / "config.json").write_text((flan_folder / "config.json").read_text())
    torch.save(load_file(flan_folder / "model.safetensors"), tmp_path / "pytorch_model.bin")
    ref = T5.from_pretrained(flan_folder)
    assert torch.equal(logits_of(T5.from_pretrained(tmp_path), 120), logits_of(ref, 120))


def test_save_is_atomic_and_leaves_no_temporaries(flan_folder, tmp_path):
    T5.from_pretrained(flan_folder).save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "generation_config.json", "model.safetensors"]
    # saved files get the usual permissions (umask), not the 0600 of a temporary file
    mask = os.umask(0)
    os.umask(mask)
    for file in tmp_path.iterdir():
        assert file.stat().st_mode & 0o777 == 0o666 & ~mask, file.name


# ---------------------------------------------------------------- dtypes
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_loading(flan_folder, dtype):
    model = T5.from_pretrained(flan_folder, dtype=dtype)
    hf = load_hf("flan-t5", flan_folder, dtype=dtype)
    for name, p in model.named_parameters():
        # float16 keeps the FFN output matrix in fp32, as transformers does (`wo` in _keep_in_fp32_modules)
        expected = torch.float32 if dtype == torch.float16 and name.endswith("ffn.down.weight") else dtype
        assert p.dtype == expected, name
    ours, ref = logits_of(model, 120), logits_of(hf, 120, is_hf=True)
    fp32 = logits_of(T5.from_pretrained(flan_folder), 120)
    assert ours.dtype == ref.dtype
    # Half precision rounds differently op by op; stay as close to transformers as to our own fp32 result.
    assert (ours.float() - ref.float()).abs().max().item() <= 2 * (ref.float() - fp32).abs().max().item() + 1e-3


def test_rms_norm_statistics_are_fp32():
    from minit5.model import RMSNorm
    norm = RMSNorm(4, eps=1e-6).to(torch.float16)
    x = torch.full((1, 1, 4), 300.0, dtype=torch.float16)  # 300**2 = 90000 overflows fp16 (max 65504)
    out = norm(x)
    assert out.dtype == torch.float16 and torch.isfinite(out).all()
    assert torch.allclose(out.float(), torch.ones(1, 1, 4), atol=1e-3)


def test_fresh_model_uses_t5_initialisation():
    torch.manual_seed(0)
    config = T5Config.flan_t5("small", num_layers=2)
    model = T5(config)
    block = model.encoder.blocks[0]
    assert abs(model.embed.weight.std().item() - 1.0) < 0.01
    assert abs(block.self_attn.q.weight.std().item() - (512 * 64) ** -0.5) < 2e-4
    assert abs(block.self_attn.k.weight.std().item() - 512 ** -0.5) < 1e-3
    assert abs(block.ffn.down.weight.std().item() - 1024 ** -0.5) < 1e-3
    assert torch.equal(block.ffn_norm.weight, torch.ones(512))
    with torch.device("meta"):  # flan-t5-small has 76,961,152 parameters (transformers counts the same)
        assert T5(T5Config.flan_t5("small")).num_parameters() == 76_961_152


def test_flan_t5_named_configs():
    small = T5Config.flan_t5("small")
    assert (small.d_model, small.d_ff, small.num_heads, small.num_layers, small.num_decoder_layers) == (512, 1024, 6, 8, 8)
    assert small.is_gated and not small.tie_word_embeddings and not small.scale_decoder_outputs
    xl = T5Config.flan_t5("xl")
    assert (xl.d_model, xl.d_ff, xl.num_heads, xl.num_layers) == (2048, 5120, 32, 24)
    with torch.device("meta"):
        assert 2.7e9 < T5(xl).num_parameters() < 2.9e9
    with pytest.raises(ValueError, match="unknown flan-T5 size 'huge'"):
        T5Config.flan_t5("huge")


# ---------------------------------------------------------------- memory
def test_loading_peak_memory_stays_under_1_3x_checkpoint(tmp_path):
    """Build a ~130 MB checkpoint, load it in a fresh process, compare peak RSS growth with the file size."""
    torch.manual_seed(0)
    config = tiny_config(vocab_size=32128, d_model=512, d_ff=1024, d_kv=64, num_heads=8, num_layers=1)
    T5(config).save_pretrained(tmp_path)
    size = (tmp_path / "model.safetensors").stat().st_size
    script = textwrap.dedent(f"""
        import sys, torch
        sys.path.insert(0, {str(ROOT)!r})
        from minit5 import T5
        def status_mb(field):  # VmRSS = resident now, VmHWM = peak resident (ru_maxrss would count the parent)
            line = next(l for l in open('/proc/self/status') if l.startswith(field + ':'))
            return int(line.split()[1]) / 1024
        before = status_mb('VmRSS')
        model = T5.from_pretrained({str(tmp_path)!r}, dtype=getattr(torch, sys.argv[1]))
        print(status_mb('VmHWM') - before)
    """)
    for dtype in ("float32", "bfloat16"):
        out = subprocess.run([sys.executable, "-c", script, dtype], capture_output=True, text=True, check=True)
        grown_mb = float(out.stdout.strip().splitlines()[-1])
        assert grown_mb * 2**20 <= 1.3 * size, (dtype, grown_mb, size / 2**20)


# ---------------------------------------------------------------- bad input
def test_missing_folder(tmp_path):
    with pytest.raises(CheckpointError, match=r"model folder .*nowhere does not exist"):
        T5.from_pretrained(tmp_path / "nowhere")


def test_file_instead_of_folder(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(CheckpointError, match="is a file"):
        T5.from_pretrained(tmp_path / "file.txt")


def test_no_config(tmp_path):
    with pytest.raises(CheckpointError, match="has no config.json"):
        T5.from_pretrained(tmp_path)


def test_no_weights_file(flan_folder, tmp_path):
    (tmp_path / "config.json").write_text((flan_folder / "config.json").read_text())
    with pytest.raises(CheckpointError, match="holds no weights file"):
        T5.from_pretrained(tmp_path)


def copy_folder(src, dst):
    dst.mkdir(exist_ok=True)
    for p in src.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    return dst


def test_config_not_json(flan_folder, tmp_path):
    folder = copy_folder(flan_folder, tmp_path / "m")
    (folder / "config.json").write_text("{ this is not json")
    with pytest.raises(CheckpointError, match=r"config.json is not valid JSON"):
        T5.from_pretrained(folder)


def test_config_lacking_fields(flan_folder, tmp_path):
    folder = copy_folder(flan_folder, tmp_path / "m")
    raw = json.loads((folder / "config.json").read_text())
    del raw["d_model"], raw["num_heads"]
    (folder / "config.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match=r"config.json lacks the field\(s\) d_model, num_heads"):
        T5.from_pretrained(folder)


def test_unknown_feed_forward_proj(flan_folder, tmp_path):
    folder = copy_folder(flan_folder, tmp_path / "m")
    raw = json.loads((folder / "config.json").read_text())
    raw["feed_forward_proj"], raw["dense_act_fn"] = "gated-wiggle", "wiggle"
    (folder / "config.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match="feed_forward_proj='gated-wiggle' is not supported"):
        T5.from_pretrained(folder)
    with pytest.raises(ValueError, match="feed_forward_proj='swiglu-x-y' is not supported"):
        T5Config(feed_forward_proj="swiglu-x-y")


def rewrite_weights(folder, edit):
    tensors = load_file(folder / "model.safetensors")
    edit(tensors)
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})


def test_missing_parameter_is_named(flan_folder, tmp_path):
    folder = copy_folder(flan_folder, tmp_path / "m")
    rewrite_weights(folder, lambda t: t.pop("decoder.block.1.layer.2.DenseReluDense.wi_1.weight"))
    with pytest.raises(CheckpointError, match=r"lacks the parameter\(s\) decoder.block.1.layer.2.DenseReluDense.wi_1"):
        T5.from_pretrained(folder)


def test_unexpected_parameter_is_named(flan_folder, tmp_path):
    folder = copy_folder(flan_folder, tmp_path / "m")
    rewrite_weights(folder, lambda t: t.__setitem__("encoder.block.7.extra.weight", torch.zeros(2)))
    with pytest.raises(CheckpointError, match=r"holds parameter\(s\) encoder.block.7.extra.weight"):
        T5.from_pretrained(folder)


def test_shape_mismatch_names_both_shapes(flan_folder, tmp_path):
    folder = copy_folder(flan_folder, tmp_path / "m")
    rewrite_weights(folder, lambda t: t.__setitem__("encoder.block.0.layer.0.SelfAttention.q.weight",
                                                    torch.zeros(16, 32)))
    with pytest.raises(CheckpointError, match=r"encoder.block.0.layer.0.SelfAttention.q.weight has shape \[16, 32\], "
                                              r"but config.json implies \[32, 32\]"):
        T5.from_pretrained(folder)


def test_truncated_safetensors(flan_folder, tmp_path):
    folder = copy_folder(flan_folder, tmp_path / "m")
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"model.safetensors is not a readable safetensors file"):
        T5.from_pretrained(folder)


def test_garbage_safetensors(flan_folder, tmp_path):
    folder = copy_folder(flan_folder, tmp_path / "m")
    (folder / "model.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match=r"model.safetensors is not a readable safetensors file"):
        T5.from_pretrained(folder)


def test_shard_index_pointing_at_missing_shard(flan_folder, tmp_path):
    T5.from_pretrained(flan_folder).save_pretrained(tmp_path, max_shard_size="20KB")
    victim = sorted(tmp_path.glob("model-*.safetensors"))[1]
    victim.unlink()
    with pytest.raises(CheckpointError, match=f"lists the shard {victim.name}, which is missing"):
        T5.from_pretrained(tmp_path)


def test_bad_dtype(flan_folder):
    with pytest.raises(CheckpointError, match="dtype must be"):
        T5.from_pretrained(flan_folder, dtype=torch.int8)


def test_hub_id_offline_gives_one_clear_sentence(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match=r"could not fetch google/flan-t5-small .*hf download google/flan-t5-small"):
        T5.from_pretrained("google/flan-t5-small")


def test_hub_id_without_huggingface_hub(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # makes `import huggingface_hub` fail
    with pytest.raises(CheckpointError, match=r"needs huggingface_hub \(pip install huggingface_hub\)"):
        T5.from_pretrained("google/flan-t5-small")


def test_error_leaves_nothing_half_loaded(flan_folder, tmp_path):
    """A failing load raises before any model object escapes; a later good load is unaffected."""
    folder = copy_folder(flan_folder, tmp_path / "m")
    rewrite_weights(folder, lambda t: t.pop("shared.weight"))
    with pytest.raises(CheckpointError, match="shared.weight"):
        T5.from_pretrained(folder)
    model = T5.from_pretrained(flan_folder)
    assert all(p.device.type == "cpu" for p in model.parameters())


def test_safetensors_metadata_matches_transformers(flan_folder, tmp_path):
    T5.from_pretrained(flan_folder).save_pretrained(tmp_path)
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        assert f.metadata() == {"format": "pt"}


def test_saving_over_the_folder_a_mapped_model_came_from_keeps_its_weights(tmp_path):
    """Loading memory-maps the file; save_pretrained replaces files by rename, so the loaded model is untouched."""
    torch.manual_seed(0)
    T5(tiny_config()).save_pretrained(tmp_path)
    loaded = T5.from_pretrained(tmp_path)
    before = {k: v.clone() for k, v in loaded.state_dict().items()}
    torch.manual_seed(1)
    T5(tiny_config()).save_pretrained(tmp_path)  # different weights, same folder
    assert all(torch.equal(before[k], v) for k, v in loaded.state_dict().items())
    reloaded = T5.from_pretrained(tmp_path)
    assert not all(torch.equal(before[k], v) for k, v in reloaded.state_dict().items())
