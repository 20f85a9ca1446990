"""minit5.model.dropout: the CPU dropout that draws four 16-bit random numbers per 64-bit draw. It must behave as
F.dropout does: drop each element independently with probability p, scale the others so that the mean is kept,
and send the gradient through the kept elements only."""

import pytest
import torch
import torch.nn.functional as F

from minit5 import T5, T5Config
from minit5.model import Dropout, dropout

N = 1_000_003  # not a multiple of 4: the last 64-bit draw is only partly used


def sigmas(observed, expected, n):
    """How many standard deviations a frequency observed over n independent draws is from the expected one."""
    return abs(observed - expected) / (expected * (1 - expected) / n) ** 0.5


@pytest.mark.parametrize("p", [0.1, 0.25, 0.5, 0.9])
def test_drops_each_element_with_probability_p_and_keeps_the_mean(p):
    torch.manual_seed(0)
    y = dropout(torch.ones(N), p, training=True)
    scale = 1 / (1 - round(p * 65536) / 65536)
    assert torch.unique(y).tolist() == [0.0, pytest.approx(scale)]
    dropped = y == 0
    assert sigmas(dropped.float().mean().item(), p, N) < 5
    # Each of the four 16-bit numbers of a 64-bit draw is as random as the others (a sign bit that is never set
    # would keep every fourth element).
    for lane in range(4):
        assert sigmas(dropped[lane::4].float().mean().item(), p, len(dropped[lane::4])) < 5
    # Neighbours are independent: both dropped with probability p².
    assert sigmas((dropped[1:] & dropped[:-1]).float().mean().item(), p * p, N - 1) < 5
    assert y.mean().item() == pytest.approx(1.0, abs=5 * (p / (1 - p) / N) ** 0.5)


def test_rate_is_p_rounded_to_a_multiple_of_1_over_65536():
    torch.manual_seed(1)
    y = dropout(torch.ones(N), 0.1, training=True)
    assert y.max().item() == pytest.approx(65536 / (65536 - 6554))  # 0.1 * 65536 = 6553.6 -> 6554


def test_gradient_flows_through_the_kept_elements_scaled():
    torch.manual_seed(2)
    x = torch.randn(3, 4, 50, requires_grad=True)
    y = dropout(x, 0.3, training=True)
    g = torch.randn_like(y)
    y.backward(g)
    kept = y != 0
    scale = 1 / (1 - round(0.3 * 65536) / 65536)
    torch.testing.assert_close(y, torch.where(kept, x * scale, 0.0))
    torch.testing.assert_close(x.grad, torch.where(kept, g * scale, 0.0))


def test_off_when_not_training_or_p_zero_and_seeded():
    x = torch.randn(8, 16)
    assert dropout(x, 0.5, training=False) is x
    assert dropout(x, 0.0, training=True) is x
    torch.manual_seed(3)
    first = dropout(x, 0.5, training=True)
    torch.manual_seed(3)
    assert torch.equal(first, dropout(x, 0.5, training=True))  # torch's generator: seeds and resumes work as before
    assert dropout(x.to(torch.bfloat16), 0.5, training=True).dtype == torch.bfloat16


def test_same_statistics_as_torch_dropout():
    torch.manual_seed(4)
    x = torch.randn(N)
    ours, theirs = dropout(x, 0.1, training=True), F.dropout(x, 0.1, training=True)
    assert ours.std().item() == pytest.approx(theirs.std().item(), rel=0.01)
    assert abs(ours.mean().item() - theirs.mean().item()) < 0.01


def test_the_model_uses_it():
    config = T5Config(vocab_size=50, d_model=16, d_ff=32, d_kv=4, num_heads=4, num_layers=1, dropout_rate=0.2)
    model = T5(config)
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert layers and all(isinstance(m, Dropout) for m in layers)
    ids = torch.randint(0, 50, (2, 7))
    labels = torch.randint(0, 50, (2, 5))
    torch.manual_seed(5)
    a = model(ids, labels=labels)[1]
    b = model(ids, labels=labels)[1]
    assert a.item() != b.item()  # training: new masks each call
    model.eval()
    assert model(ids, labels=labels)[1].item() == model(ids, labels=labels)[1].item()
