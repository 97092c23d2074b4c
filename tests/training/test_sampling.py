import numpy as np
import pytest
import torch

from ser_hf.training.sampling import WindowedLengthSampler


def _batches(sampler, batch_size):
    order = list(sampler)
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def test_every_clip_once_per_epoch_in_batches_of_similar_length():
    rng = np.random.default_rng(0)
    lengths = rng.uniform(1.0, 5.0, size=203)
    torch.manual_seed(0)
    sampler = WindowedLengthSampler(lengths, batch_size=8, window_batches=4)
    order = list(sampler)
    assert sorted(order) == list(range(203)) and len(sampler) == 203
    batches = _batches(sampler, 8)
    assert all(len(b) == 8 for b in batches[:-1]) and len(batches[-1]) == 203 % 8  # the short batch comes last
    # Padding to each batch's longest clip wastes far less than with random batches.
    def padded_share(batches):
        return sum(max(lengths[b]) * len(b) - sum(lengths[b]) for b in batches) / sum(lengths)
    random_batches = [list(b) for b in np.array_split(rng.permutation(203), range(8, 203, 8))]
    assert padded_share(batches) < 0.5 * padded_share(random_batches)


def test_classes_stay_mixed_when_length_follows_the_class():
    # 8 classes, each with its own clip length (the demo corpus's worst case): a full sort would give one class
    # per batch; windows of 4 batches keep several in each.
    labels = np.repeat(np.arange(8), 40)
    lengths = 1.0 + labels + np.random.default_rng(1).uniform(0, 0.5, size=len(labels))
    torch.manual_seed(0)
    batches = _batches(WindowedLengthSampler(lengths, batch_size=16, window_batches=4), 16)
    classes_per_batch = [len(set(labels[b])) for b in batches]
    assert np.mean(classes_per_batch) >= 2.5
    # Larger windows sort more: fewer classes per batch (the knob does what it says).
    torch.manual_seed(0)
    sorted_batches = _batches(WindowedLengthSampler(lengths, batch_size=16, window_batches=20), 16)
    assert np.mean([len(set(labels[b])) for b in sorted_batches]) < np.mean(classes_per_batch)


def test_order_follows_torch_seed_and_changes_each_epoch():
    lengths = list(range(64))
    sampler = WindowedLengthSampler(lengths, batch_size=4, window_batches=2)
    torch.manual_seed(3)
    first, second = list(sampler), list(sampler)
    torch.manual_seed(3)
    assert list(sampler) == first and first != second


def test_refuses_empty_batches():
    with pytest.raises(ValueError, match="positive"):
        WindowedLengthSampler([1, 2], batch_size=0, window_batches=2)
