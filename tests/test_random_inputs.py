"""Random settings and random input: 50 random generation settings against transformers on random models, and
random or malformed config.json contents and random Unicode text, which must give a clear error or a correct
result, never a traceback."""

import json
import random

import pytest
import torch
from hf_models import load_hf, padded_batch

from minit5 import T5, T5Config, Tokenizer
from minit5.checkpoint import CheckpointError
from minit5.config import ConfigError


@pytest.fixture(scope="module")
def pairs(hf_folder):
    out = {}
    for variant in ("t5-v1.0", "flan-t5", "odd-shape"):
        folder = hf_folder(variant, eos_likely=True)
        out[variant] = load_hf(variant, folder), T5.from_pretrained(folder)
    return out


def random_settings(count=50, seed=0):
    rng = random.Random(seed)
    for i in range(count):
        max_new = rng.randint(1, 12)
        settings = dict(num_beams=rng.choice([1, 1, 2, 3, 4, 5]), max_new_tokens=max_new,
                        min_new_tokens=rng.randint(0, min(max_new, 4)))
        if settings["num_beams"] > 1:
            settings.update(length_penalty=rng.choice([-1.0, 0.0, 0.6, 1.0, 1.5, 2.5]),
                            early_stopping=rng.random() < 0.5)
        batch = dict(batch=rng.randint(1, 4), src_len=rng.randint(3, 12), seed=i)
        yield i, rng.choice(["t5-v1.0", "flan-t5", "odd-shape"]), settings, batch


def test_fifty_random_generation_settings_give_transformers_tokens(pairs):
    tried = set()
    for i, variant, settings, batch in random_settings():
        hf, model = pairs[variant]
        input_ids, attention_mask, _ = padded_batch(model.config.vocab_size, **batch)
        with torch.no_grad():
            ref = hf.generate(input_ids=input_ids, attention_mask=attention_mask, do_sample=False, use_cache=False,
                              **settings)
        out = model.generate(input_ids, attention_mask, **settings)
        assert torch.equal(out, ref), (i, variant, settings, batch, out, ref)
        tried.add((variant, settings["num_beams"] > 1, settings.get("early_stopping")))
    assert len(tried) >= 8  # greedy and beams, both stopping rules, on every model


# ---------------------------------------------------------------------------------------------- config.json
GOOD = dict(vocab_size=120, d_model=32, d_ff=48, d_kv=8, num_heads=4, num_layers=2, feed_forward_proj="gated-gelu")
WEIRD_VALUES = [None, True, False, 0, -1, 1.5, 10**12, "", "gated-", "relu", "gated-silu", "t5", [], {}, [1], "8",
                float("nan")]


def random_configs(count=120, seed=1):
    rng = random.Random(seed)
    keys = list(GOOD) + ["num_decoder_layers", "relative_attention_num_buckets", "relative_attention_max_distance",
                         "dropout_rate", "layer_norm_epsilon", "model_type", "dense_act_fn", "tie_word_embeddings",
                         "decoder_start_token_id", "pad_token_id", "eos_token_id", "is_gated_act"]
    for _ in range(count):
        raw = dict(GOOD)
        for key in rng.sample(keys, rng.randint(1, 3)):
            if rng.random() < 0.2:
                raw.pop(key, None)
            else:
                raw[key] = rng.choice(WEIRD_VALUES)
        yield raw


def test_random_config_json_gives_a_clear_error_or_a_model(tmp_path):
    outcomes = {"model": 0, "error": 0}
    for n, raw in enumerate(random_configs()):
        path = tmp_path / f"config{n}.json"
        path.write_text(json.dumps(raw))
        try:
            config = T5Config.from_json_file(path)
        except ConfigError as e:
            assert str(e).startswith(str(path)) and "\n" not in str(e), (raw, str(e))
            outcomes["error"] += 1
            continue
        with torch.device("meta"):  # the config must build a model (shapes only, no memory)
            T5(config)
        outcomes["model"] += 1
    assert outcomes["model"] >= 10 and outcomes["error"] >= 10, outcomes


@pytest.mark.parametrize("text", ["", "[]", "null", "3", '"a string"', "{", '{"vocab_size": 1e400}', "\ufeff{}",
                                  '{"d_model": 32}'])
def test_malformed_config_json_in_a_model_folder(tmp_path, text):
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(CheckpointError) as raised:
        T5.from_pretrained(tmp_path)
    assert "config.json" in str(raised.value) and "\n" not in str(raised.value)


def test_random_bytes_as_config_json(tmp_path):
    rng = random.Random(2)
    for n in range(20):
        (tmp_path / "config.json").write_bytes(bytes(rng.randrange(256) for _ in range(rng.randint(0, 60))))
        with pytest.raises(CheckpointError, match="config.json"):
            T5.from_pretrained(tmp_path)


# ---------------------------------------------------------------------------------------------- tokenizer
def random_text(rng, length):
    """Any Unicode scalar value, with a bias towards the awkward: combining marks, CJK, emoji, controls."""
    ranges = [(0x20, 0x7E), (0x00, 0x1F), (0x80, 0x2FF), (0x300, 0x36F), (0x4E00, 0x9FFF), (0x1F300, 0x1FAFF),
              (0xE000, 0xF8FF), (0x10000, 0x10FFFF), (0xFFF0, 0xFFFF)]
    chars = []
    for _ in range(length):
        low, high = rng.choice(ranges)
        code = rng.randint(low, high)
        chars.append(chr(code) if not 0xD800 <= code <= 0xDFFF else "x")  # surrogates are not text
    return "".join(chars)


def test_byte_level_round_trips_random_unicode():
    tok, rng = Tokenizer.byte_level(), random.Random(3)
    for _ in range(300):
        text = random_text(rng, rng.randint(0, 40))
        ids = tok.encode(text)
        assert ids[-1] == tok.eos_id and all(0 <= i < tok.vocab_size for i in ids)
        assert tok.decode(ids) == text.replace("</s>", "")  # byte-level: every string comes back


def test_sentencepiece_tokenizer_on_random_unicode_matches_transformers(tmp_path):
    from tokenizer_vocab import make_folders
    from transformers import AutoTokenizer
    folder = make_folders(tmp_path)["hf"]
    tok, ref, rng = Tokenizer.from_pretrained(folder), AutoTokenizer.from_pretrained(folder), random.Random(4)
    for _ in range(300):
        text = random_text(rng, rng.randint(0, 40))
        ids = tok.encode(text)
        assert ids == ref(text)["input_ids"], repr(text)
        assert tok.decode(ids) == ref.decode(ids, skip_special_tokens=True), repr(text)
