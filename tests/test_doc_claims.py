"""Claims in the docs that prose states and code decides: each test reads the sentence and checks it against the
code (or against transformers, where the docs compare with it). Tables and sentences that a script can print are
generated blocks instead (tests/test_docs.py); these are the ones that stay prose."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import transformers

from minit5 import T5, T5Config, Tokenizer
from minit5.model import attention

ROOT = Path(__file__).resolve().parents[1]


def read(page: str) -> str:
    return (ROOT / page).read_text(encoding="utf-8")


@pytest.mark.parametrize("page, says", [("docs/training.md", "is"), ("docs/zh/training.md", "是")])
def test_byte_level_sentinels_count_up_as_training_md_says(page, says):
    tok = Tokenizer.byte_level()
    written = {int(i): int(n) for i, n in re.findall(r"`<extra_id_(\d+)>` " + says + r" (\d+)", read(page))}
    assert written, f"{page} should say which ids the byte-level sentinels have"
    assert written == {i: tok.sentinel_id(i) for i in written}
    assert max(written) == tok.num_sentinels - 1  # the last sentinel is named, so the range is the whole range
    assert tok.sentinel_id(1) == tok.sentinel_id(0) + 1  # counting up


def _floor(text: str, pattern: str) -> tuple[int, ...]:
    match = re.search(pattern, text)
    assert match, f"no torch version floor matching {pattern!r}"
    return tuple(int(x) for x in match.group(1).split("."))


def test_the_torch_floor_is_the_same_everywhere_and_covers_adafactor():
    pyproject = _floor(read("pyproject.toml"), r'"torch>=([\d.]+)"')
    readme = _floor(read("README.md"), r"torch >= ([\d.]+)")
    assert pyproject == readme, f"pyproject.toml says torch>={pyproject}, README.md says torch >= {readme}"
    if "torch.optim.Adafactor" in read("minit5/trainer.py"):
        assert pyproject >= (2, 5), "torch.optim.Adafactor first shipped in torch 2.5"


def test_softmax_in_the_compute_dtype_as_the_named_transformers_version_does(monkeypatch):
    """docs/architecture.md: minit5's eager attention takes the softmax of bf16 scores as they are (no cast to fp32
    first), as the eager attention of the transformers version it names does."""
    from transformers.models.t5.modeling_t5 import eager_attention_forward

    major = transformers.__version__.split(".")[0]
    assert f"as transformers {major}'s eager attention does" in read("docs/architecture.md"), \
        "docs/architecture.md should name the transformers version whose softmax it describes"
    seen = []
    softmax = torch.nn.functional.softmax

    def recording_softmax(x, *args, **kwargs):
        seen.append(x.dtype)
        return softmax(x, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "softmax", recording_softmax)
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 8, generator=g).to(torch.bfloat16) for _ in range(3))
    bias = torch.randn(1, 3, 5, 5, generator=g).to(torch.bfloat16) * 4
    ours = attention(q, k, v, bias, dropout_p=0.0, use_sdpa=False)  # (B, H, T, Dh)
    module = torch.nn.Module().eval()
    theirs, _ = eager_attention_forward(module, q, k, v, None, scaling=1.0, dropout=0.0, position_bias=bias)
    assert seen == [torch.bfloat16, torch.bfloat16], f"softmax inputs (minit5, transformers): {seen}"
    assert torch.equal(ours, theirs.transpose(1, 2))  # and the results agree bit for bit


def test_lm_head_and_q_initialisation_as_architecture_md_says():
    text = read("docs/architecture.md")
    assert "std d_model^-0.5 in `T5.init_weights`" in text and "draws it with std 1.0" in text
    config = T5Config(vocab_size=512, d_model=256, d_ff=64, d_kv=16, num_heads=2, num_layers=1,
                      feed_forward_proj="gated-gelu", tie_word_embeddings=False)
    torch.manual_seed(0)
    model = T5(config)
    assert abs(model.lm_head.weight.std().item() / config.d_model ** -0.5 - 1) < 0.02
    attn = model.encoder.blocks[0].self_attn
    # q drawn sqrt(d_kv) times smaller than k: at initialisation, exactly the usual 1/sqrt(d_kv) score scaling
    ratio = attn.q.weight.std().item() / attn.k.weight.std().item()
    assert abs(ratio * config.d_kv ** 0.5 - 1) < 0.05

    hf_config = transformers.T5Config(vocab_size=512, d_model=256, d_ff=64, d_kv=16, num_heads=2, num_layers=1,
                                      feed_forward_proj="gated-gelu", tie_word_embeddings=False)
    torch.manual_seed(0)
    hf = transformers.T5ForConditionalGeneration(hf_config)
    assert abs(hf.lm_head.weight.std().item() - 1.0) < 0.02, "transformers' lm_head init is no longer std 1.0"
