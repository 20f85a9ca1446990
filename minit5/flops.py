"""How much arithmetic a training step does, and how much of the machine's speed it used (MFU).

A matrix product of (m, k) by (k, n) costs 2·m·k·n floating-point operations (a multiply and an add per term).
A transformer's step is almost all such products, so counting them counts the work:

    per token, each linear layer (in → out)      2 · in · out
    per query, attention over L keys             2 · L · inner   (scores q·k)  +  2 · L · inner   (weights · v)
    backward                                     2 × forward     (the gradient for the input and for the weight)

The norms, softmax, activations and adds are left out (a few percent at most); that is the usual convention
(Kaplan et al. 2020; PaLM's MFU), so the figures compare with others'. MFU ("model FLOPs utilisation") is the
FLOPs a step needs divided by its time and by the machine's peak: the fraction of the hardware doing useful
arithmetic. Here the peak is measured, not taken from a data sheet: one large fp32 matrix product
(`matmul_peak`), as bench/run.py does, so MFU compares runs on different machines.
"""

from __future__ import annotations

import functools
import statistics
import time

import torch

from .config import T5Config


def forward_flops(config: T5Config, source_len: int, target_len: int) -> int:
    """FLOPs of one example's forward pass: source_len encoder tokens, target_len decoder tokens (real tokens:
    padding is waste, so a padded batch shows as lower MFU)."""
    d, inner, ff, vocab = config.d_model, config.inner_dim, config.d_ff, config.vocab_size
    ffn = (3 if config.is_gated else 2) * d * ff  # gate, up, down (or up, down), per token
    attention = 4 * d * inner  # q, k, v, o per token
    encoder = config.num_layers * (source_len * (attention + ffn)
                                   + 2 * inner * source_len * source_len)  # scores and weighted sum, all pairs
    decoder = config.num_decoder_layers * (
        target_len * (attention + 2 * d * inner + ffn)  # self-attention, cross-attention q and o, FFN
        + source_len * 2 * d * inner  # cross-attention k and v over the encoder output
        + 2 * inner * target_len * target_len  # causal self-attention: counted as the full square, as computed
        + 2 * inner * target_len * source_len)  # cross-attention over the source
    head = target_len * d * vocab
    return 2 * (encoder + decoder + head)


def training_flops(config: T5Config, source_lens, target_lens, trains_weights: bool = True) -> int:
    """FLOPs of one training step over examples of these lengths. Backward costs twice the forward when the
    weights train (gradients for the inputs and for the weights), once when they are frozen (LoRA: only the
    inputs' gradients flow back through the big matrices; the adapters are too small to count)."""
    forward = sum(forward_flops(config, s, t) for s, t in zip(source_lens, target_lens))
    return forward * (3 if trains_weights else 2)


def cpu_flags() -> dict:
    """This CPU's instruction-set flags, as torch sees them (avx2, avx512_vnni, avx512_bf16, amx_bf16, ...)."""
    get = getattr(torch.cpu, "get_capabilities", None)  # newer torch; older ones answer only the VNNI question
    return get() if get is not None else {"avx512_vnni": torch.cpu._is_vnni_supported()}


def native_bf16(flags: dict) -> bool:
    """Whether a CPU multiplies bf16 in hardware (AVX512-BF16 or AMX); without, bf16 is converted and slower."""
    return bool(flags.get("avx512_bf16") or flags.get("amx_bf16"))


@functools.lru_cache(maxsize=None)
def matmul_peak(device="cpu", n: int = 2048, reps: int = 5) -> float:
    """FLOP/s of one n×n by n×n fp32 product on this device, median of reps after a warm-up: the machine's
    practical peak for the arithmetic a training step does. Measured once per process and device."""
    a = torch.full((n, n), 0.5, device=device)  # the values do not matter; no random numbers are drawn
    b = torch.full((n, n), 0.25, device=device)
    cuda = torch.device(device).type == "cuda"
    times = []
    for i in range(reps + 2):
        start = time.perf_counter()
        a @ b
        if cuda:
            torch.cuda.synchronize()
        if i >= 2:  # the first two warm up
            times.append(time.perf_counter() - start)
    return 2 * n ** 3 / statistics.median(times)
