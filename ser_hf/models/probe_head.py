"""The head a linear probe trains: an audio classifier's own head applied to cached per-layer time means.

`ProbeHead` holds copies of the model's layer weights, projector and classifier; `write_head` puts a trained one
back into the model, which is then saved and evaluated like any fine-tuned one.
"""

import copy

import torch
from torch import nn


class ProbeHead(nn.Module):
    """An audio classifier's head applied to per-layer time means: classifier(projector(sum_l softmax(w)_l x_l)).

    Args:
        layer_weights: the logits of the layer weights, one per hidden state used.
        projector: the model's projector (hidden_size -> classifier_proj_size).
        classifier: the model's classifier (classifier_proj_size -> num_labels).
    """

    def __init__(self, layer_weights, projector, classifier):
        super().__init__()
        self.layer_weights = nn.Parameter(layer_weights.detach().clone().float())
        self.projector = projector
        self.classifier = classifier

    @classmethod
    def from_model(cls, model, num_layers=None):
        """A copy of the head of `model` (a classifier or a ProbeHead) as it is now; `num_layers` gives a head on
        that many hidden states (a single-layer probe: 1) with uniform layer weights, as the model initialises them."""
        weights = model.layer_weights if num_layers is None else torch.full((num_layers,), 1.0 / num_layers)
        head = cls(weights, copy.deepcopy(model.projector), copy.deepcopy(model.classifier))
        head.float().requires_grad_(True)
        return head

    def forward(self, means):
        """Logits [clips, num_labels] from means [clips, layers, hidden_size]."""
        weights = torch.softmax(self.layer_weights, dim=-1)
        return self.classifier(self.projector((means * weights[None, :, None]).sum(dim=1)))


@torch.no_grad()
def write_head(head, model):
    """Copy a trained `ProbeHead` (on every hidden state) into the model's head, in place."""
    model.layer_weights.copy_(head.layer_weights)
    model.projector.load_state_dict(head.projector.state_dict())
    model.classifier.load_state_dict(head.classifier.state_dict())
    return model
