"""minit5/flops.py counts a training step's FLOPs: checked against torch's own count of the matrix products
(torch.utils.flop_counter) on small models of both FFN kinds, padding left out."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from minit5 import T5, T5Config
from minit5.flops import forward_flops, matmul_peak, training_flops


@pytest.mark.parametrize("ffn,tied", [("gated-gelu", False), ("relu", True)])
def test_counts_what_torch_counts(ffn, tied):
    config = T5Config(vocab_size=96, d_model=32, d_ff=48, d_kv=8, num_heads=3, num_layers=2, num_decoder_layers=3,
                      feed_forward_proj=ffn, tie_word_embeddings=tied, dropout_rate=0.0)
    model = T5(config)
    source, target = 11, 7
    input_ids = torch.randint(2, 96, (2, source))
    labels = torch.randint(2, 96, (2, target))
    with FlopCounterMode(display=False) as forward:
        model(input_ids, labels=labels)
    assert forward.get_total_flops() == 2 * forward_flops(config, source, target)
    with FlopCounterMode(display=False) as step:
        model(input_ids, labels=labels)[1].backward()
    assert step.get_total_flops() == training_flops(config, [source] * 2, [target] * 2)  # backward = 2 forwards


def test_frozen_weights_cost_one_backward_less():
    config = T5Config(vocab_size=96, d_model=32, d_ff=48, d_kv=8, num_heads=4, num_layers=1)
    full = training_flops(config, [10, 5], [4, 3])
    assert training_flops(config, [10, 5], [4, 3], trains_weights=False) * 3 == full * 2


def test_matmul_peak_is_a_rate():
    peak = matmul_peak(n=256, reps=2)
    assert 1e8 < peak < 1e15  # FLOP/s of some real machine
