"""Step 4: the feed-forward network, gated GELU (flan-T5) and ReLU (T5 v1.0). Compared with minit5 and transformers.

(PYTEST_DONT_REWRITE: a failed check shows its own message, not pytest's account of the expression.)"""

import torch
import torch.nn.functional as F
from transformers.activations import NewGELUActivation

from minit5.model import FeedForward as Reference

from ._support import check_close, tiny_config, v1_0_config

STEP = "step04_feed_forward"


def test_gelu_new_is_the_tanh_approximation(impl):
    x = torch.linspace(-6, 6, 2001)
    expected = NewGELUActivation()(x)  # transformers' gelu_new, the activation T5 v1.1 and flan-T5 use
    check_close(impl.gelu_new(x), expected, "gelu_new(x)", atol=1e-6, rtol=1e-6,
                mistakes=[("this is the exact (erf) GELU, F.gelu(x). T5 v1.1 uses the tanh approximation "
                           "0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))); the two differ by up to 5e-4.", F.gelu(x)),
                          ("this is ReLU.", F.relu(x))])


def make_pair(impl, config):
    torch.manual_seed(0)
    ref = Reference(config).eval()
    yours = impl.FeedForward(config)
    names = sorted(n for n, _ in yours.named_parameters())
    expected = sorted(n for n, _ in ref.named_parameters())
    assert names == expected, (
        f"FeedForward({config.feed_forward_proj!r}) should have the parameters {expected}, got {names}. Gated: "
        f"gate (wi_0), up (wi_1), down (wo); ReLU (T5 v1.0): up (wi) and down (wo) only; no biases.")
    yours.load_state_dict(ref.state_dict())
    return yours.eval(), ref


def test_gated_gelu_matches_minit5(impl):
    yours, ref = make_pair(impl, tiny_config())
    torch.manual_seed(1)
    x = torch.randn(2, 5, 32)
    with torch.no_grad():
        mistakes = [
            ("gate and up are swapped: the activation goes on gate(x), which multiplies up(x).",
             ref.down(F.gelu(ref.up(x), approximate="tanh") * ref.gate(x))),
            ("the activation is applied to the product: act(gate(x)) * up(x), not act(gate(x) * up(x)).",
             ref.down(F.gelu(ref.gate(x) * ref.up(x), approximate="tanh"))),
            ("the gate is missing: gated FFNs multiply act(gate(x)) by up(x).", ref.down(F.gelu(ref.gate(x), approximate="tanh"))),
        ]
        check_close(yours(x), ref(x), "FeedForward(x), gated-gelu", atol=1e-5, mistakes=mistakes,
                    hint="down(gelu_new(gate(x)) * up(x)), docs/architecture.md section 5.")


def test_relu_matches_minit5(impl):
    yours, ref = make_pair(impl, v1_0_config())
    torch.manual_seed(2)
    x = torch.randn(2, 5, 32)
    with torch.no_grad():
        check_close(yours(x), ref(x), "FeedForward(x), relu (T5 v1.0)",
                    mistakes=[("GELU is used for a ReLU config: pick the activation from config.dense_act_fn.",
                               ref.down(F.gelu(ref.up(x), approximate="tanh")))],
                    hint="T5 v1.0: down(relu(up(x))).")
