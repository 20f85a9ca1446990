"""Run by tests/test_weights_untouched.py under torchrun (2 processes, gloo): two identical models, each wrapped
in DistributedDataParallel; one generates (batch 1 and beam search) before its training steps, the other does not.
Rank 0 writes whether their parameters came out bit for bit equal.   torchrun ... ddp_generate_step.py OUT_JSON"""

import copy
import json
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from minit5 import T5, T5Config


def steps(ddp, batches):
    optimizer = torch.optim.AdamW(ddp.parameters(), lr=1e-2)
    for input_ids, labels in batches:
        _, loss = ddp(input_ids, labels=labels)
        loss.backward()  # DDP all-reduces the gradients in buckets here
        optimizer.step()
        optimizer.zero_grad()


def main(out):
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)
    model = T5(T5Config(vocab_size=64, d_model=32, d_ff=64, d_kv=8, num_heads=4, num_layers=2,
                        feed_forward_proj="gated-gelu", tie_word_embeddings=False, dropout_rate=0.0))
    twin = copy.deepcopy(model)
    generating, plain = DDP(model), DDP(twin)
    g = torch.Generator().manual_seed(rank)
    batches = [(torch.randint(2, 64, (4, 7), generator=g), torch.randint(2, 64, (4, 5), generator=g))
               for _ in range(2)]
    memory = {name: (p.data_ptr(), p.stride()) for name, p in model.named_parameters()}
    steps(plain, batches[:1])
    steps(generating, batches[:1])
    generating.module.eval()
    generating.module.generate(batches[0][0][:1], max_new_tokens=4)  # batch 1: column-major copies
    generating.module.generate(batches[0][0], max_new_tokens=4, num_beams=2)
    generating.module.train()
    untouched = memory == {name: (p.data_ptr(), p.stride()) for name, p in model.named_parameters()}
    steps(plain, batches[1:])
    steps(generating, batches[1:])
    equal = all(torch.equal(a, b) for a, b in zip(model.parameters(), twin.parameters()))
    if rank == 0:
        with open(out, "w") as f:
            json.dump({"memory_untouched": untouched, "bit_identical": equal}, f)
    del plain, generating  # DistributedDataParallel holds the group: drop it, then leave together
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
