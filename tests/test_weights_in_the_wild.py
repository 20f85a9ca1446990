"""Weight files as they exist on the hub and on disks: pytorch_model.bin with the embedding stored three times in
one shared storage, old (pre-zip) .bin files, sharded .bin, folders sharded by transformers itself, an lm_head
equal to the embedding (loads tied), and a .bin whose unpickling would run code (refused, nothing run)."""

import json
import os

import pytest
import torch
from hf_models import build_hf_model, load_hf, padded_batch
from safetensors.torch import load_file

from minit5 import T5
from minit5.checkpoint import CheckpointError


@pytest.fixture(scope="module")
def flan(tmp_path_factory):
    return build_hf_model("flan-t5", tmp_path_factory.mktemp("flan"))


@pytest.fixture(scope="module")
def v10(tmp_path_factory):
    return build_hf_model("t5-v1.0", tmp_path_factory.mktemp("v10"))


def logits(model, vocab_size=120, hf=False):
    input_ids, attention_mask, labels = padded_batch(vocab_size, seed=7)
    with torch.no_grad():
        if hf:
            return model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, use_cache=False).logits
        return model(input_ids, attention_mask=attention_mask, labels=labels)[0]


def bin_folder(source, folder, state, **save_kwargs):
    folder.mkdir()
    (folder / "config.json").write_text((source / "config.json").read_text())
    torch.save(state, folder / "pytorch_model.bin", **save_kwargs)
    return folder


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "pre-zip"])
def test_bin_with_the_embedding_stored_three_times_in_one_storage(v10, tmp_path, zip_format):
    hf, source = v10
    state = hf.state_dict()  # shared, encoder.embed_tokens, decoder.embed_tokens and lm_head: one storage
    assert {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight"} <= set(state)
    assert state["encoder.embed_tokens.weight"].data_ptr() == state["shared.weight"].data_ptr()
    folder = bin_folder(source, tmp_path / "bin", state, _use_new_zipfile_serialization=zip_format)
    model = T5.from_pretrained(folder)
    assert model.lm_head is None  # tied, as the file's lm_head is the embedding itself
    assert torch.equal(logits(model), logits(hf, hf=True))


def test_sharded_bin(flan, tmp_path):
    hf, source = flan
    state = load_file(source / "model.safetensors")
    keys = sorted(state)
    halves = {"pytorch_model-00001-of-00002.bin": keys[: len(keys) // 2],
              "pytorch_model-00002-of-00002.bin": keys[len(keys) // 2:]}
    (tmp_path / "config.json").write_text((source / "config.json").read_text())
    for name, part in halves.items():
        torch.save({k: state[k] for k in part}, tmp_path / name)
    (tmp_path / "pytorch_model.bin.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {k: name for name, part in halves.items() for k in part}}))
    assert torch.equal(logits(T5.from_pretrained(tmp_path)), logits(T5.from_pretrained(source)))


def test_folder_sharded_by_transformers(flan, tmp_path):
    hf, _ = flan
    hf.save_pretrained(tmp_path, max_shard_size="30KB")
    assert len(list(tmp_path.glob("model-*-of-*.safetensors"))) >= 3
    assert (tmp_path / "model.safetensors.index.json").exists()
    raw = json.loads((tmp_path / "config.json").read_text())
    raw["tie_word_embeddings"] = False
    (tmp_path / "config.json").write_text(json.dumps(raw))
    model = T5.from_pretrained(tmp_path)
    assert (logits(model) - logits(load_hf("flan-t5", tmp_path), hf=True)).abs().max().item() <= 1e-5


def test_lm_head_equal_to_the_embedding_loads_tied(flan, tmp_path):
    hf, source = flan
    state = load_file(source / "model.safetensors")
    state["lm_head.weight"] = state["shared.weight"].clone()  # equal values, separate tensors, config untied
    from safetensors.torch import save_file
    tmp_path.joinpath("config.json").write_text((source / "config.json").read_text())
    save_file(state, tmp_path / "model.safetensors", metadata={"format": "pt"})
    model = T5.from_pretrained(tmp_path)
    assert model.lm_head is None and model.config.tie_word_embeddings
    reference = load_hf("flan-t5", tmp_path)
    assert (logits(model) - logits(reference, hf=True)).abs().max().item() <= 1e-5


class RunsCode:
    """Unpickling this calls os.mkdir(marker): a stand-in for any code a malicious file could run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_a_bin_that_would_run_code_is_refused(flan, tmp_path):
    _, source = flan
    marker = tmp_path / "code-ran"
    state = dict(load_file(source / "model.safetensors"))
    state["shared.weight"] = RunsCode(marker)
    folder = bin_folder(source, tmp_path / "evil", state)
    with pytest.raises(CheckpointError, match=r"pytorch_model.bin holds more than tensors \(it names posix.mkdir\): "
                                              r"loading it would run code from the file, which minit5 refuses"):
        T5.from_pretrained(folder)
    assert not marker.exists()


def test_a_bin_with_other_objects_is_refused(flan, tmp_path):
    _, source = flan
    folder = bin_folder(source, tmp_path / "odd", {"shared.weight": 3})
    with pytest.raises(CheckpointError, match="does not hold a dict of tensors"):
        T5.from_pretrained(folder)
