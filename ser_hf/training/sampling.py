"""Training batches of similar length that still mix classes: less compute on padding, no class-sorted batches.

Sorting a whole corpus by length (transformers' `group_by_length` sorts inside windows of 50 batches) puts clips
of one emotion together wherever clip length follows emotion (disgust is slow, fear fast): on the demo corpus
such batches held one or two emotions and training stalled at chance. Here the clips are shuffled, cut into
small windows of `window_batches` batches, sorted by length inside each window only, and the batches are
shuffled again: each batch is drawn from a random few dozen clips, so its classes stay mixed, and its clips are
close in length, so padding (or cropping to the shortest clip) wastes little.
"""

import torch
from torch.utils.data import Sampler


class WindowedLengthSampler(Sampler):
    """Indices in batches of similar length, sorted only inside random windows of a few batches.

    Shuffled from torch's global RNG at each epoch, as `RandomSampler` is, so the Trainer's seed and checkpoints
    make it repeatable and resumable.

    Args:
        lengths: each clip's length (any unit).
        batch_size: the per-device training batch size.
        window_batches: batches per window; 1 is plain random batches, larger trades class mixing for less padding.
    """

    def __init__(self, lengths, batch_size, window_batches):
        if batch_size < 1 or window_batches < 1:
            raise ValueError(f"batch_size and window_batches must be positive, got {batch_size} and {window_batches}")
        self.lengths = torch.as_tensor(list(lengths), dtype=torch.float64)
        self.batch_size = batch_size
        self.window = batch_size * window_batches

    def __len__(self):
        return len(self.lengths)

    def __iter__(self):
        generator = torch.Generator().manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))
        order = torch.randperm(len(self.lengths), generator=generator)
        batches = []
        for start in range(0, len(order), self.window):
            window = order[start : start + self.window]
            window = window[torch.argsort(self.lengths[window], descending=True, stable=True)]
            batches += list(torch.split(window, self.batch_size))
        # The DataLoader cuts this stream into batches of batch_size again, so a short batch (there is at most one:
        # the end of the last window) must come last, or it would shift every batch after it.
        short = [batches.pop()] if len(batches[-1]) < self.batch_size else []
        for i in torch.randperm(len(batches), generator=generator).tolist():
            yield from batches[i].tolist()
        for batch in short:
            yield from batch.tolist()
