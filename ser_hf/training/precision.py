"""Mixed precision that is safe on the CPU: trained convolutions stay in fp32 under bf16 autocast.

On this project's CPUs (torch 2.13, oneDNN), bf16 autocast made the weight gradient of a trained conv layer NaN
mid-run while its inputs and output gradients were finite: the demo model's 4th feature-encoder conv at step 23,
every time. Frozen convolutions compute no weight gradient and keep bf16's speed; everything else (attention,
feed-forward, projections: most of a wav2vec2-base step once its front end is frozen) stays in bf16.
"""

import functools

import torch


def _fp32_forward(forward, hidden_states, *args, **kwargs):
    with torch.autocast(device_type="cpu", enabled=False):
        return forward(hidden_states.float(), *args, **kwargs)


def keep_trained_convolutions_fp32(model):
    """Run every trainable `Conv1d` of `model` in fp32 under CPU autocast (see the module docstring).

    Only the instances' `forward` is wrapped: parameters, state-dict keys and the saved model are unchanged.

    Args:
        model: a model about to be trained with bf16 autocast on the CPU.

    Returns:
        How many convolutions were wrapped.
    """
    wrapped = 0
    for module in model.modules():
        trained = any(p.requires_grad for p in module.parameters(recurse=False))
        if isinstance(module, torch.nn.Conv1d) and trained and not isinstance(module.forward, functools.partial):
            module.forward = functools.partial(_fp32_forward, module.forward)
            wrapped += 1
    return wrapped
