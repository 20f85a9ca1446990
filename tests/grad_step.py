"""One training step whose gradients are saved before the optimizer uses them (run by test_gradient_scale.py,
directly or under torchrun).   python tests/grad_step.py SETTINGS_JSON GRADS_OUT"""

import json
import sys

import torch

from minit5.trainer import TrainConfig, Trainer


def gradients_of_one_step(settings: dict) -> tuple[dict, Trainer]:
    """The gradients of step 1, as the optimizer receives them: {minit5 parameter name: grad}."""
    trainer = Trainer(TrainConfig(**settings), log=lambda m: None)
    grads = {}

    def record(optimizer, args, kwargs):
        grads.update({name: p.grad.detach().clone() for name, p in trainer.model.named_parameters()})

    trainer.optimizer.register_step_pre_hook(record)
    trainer.train_step()
    return grads, trainer


if __name__ == "__main__":
    settings_json, out = sys.argv[1:]
    grads, trainer = gradients_of_one_step(json.loads(settings_json))
    if trainer.is_main:
        torch.save(grads, out)
    trainer.close()
