"""What a linear probe's head needs from a frozen encoder, computed once per clip and kept on disk.

transformers' audio classifiers (wav2vec2, HuBERT, WavLM, data2vec-audio, Whisper; checked in the installed
modeling code) end in the same head: a softmax-weighted sum of all hidden states (`use_weighted_layer_sum`), a
linear projector, a mean over frames (masked where there is an attention mask) and a linear classifier. Nothing
between them is non-linear (no dropout, no activation), so

    classifier(mean_t(projector(sum_l w_l h_l,t))) = classifier(projector(sum_l w_l mean_t(h_l,t)))

and the time mean of every hidden state, one [num_hidden_layers + 1, hidden_size] array per clip, trains that
head exactly. The means come from the classifier's own `hidden_states` (the tuple its head stacks), each clip
run whole and unpadded through the feature extractor and the encoder in eval mode, fp32, as
`pipeline("audio-classification")` runs it (Whisper: its 30 s log-mel input, padding frames included in the mean,
as its head pools them). tests/training/test_probe_features.py checks head(means) == the model's logits for each
architecture.

One folder per encoder under `<corpus folder>/.ser_hf_probe_cache/` (named by `encoder_identity`), one `.npy` per
file version in it, named like the decoded-audio cache's entries (absolute path hashed, size, mtime): a changed
file or encoder gets new entries, every fold of a cross-validation and every run with that encoder reuse them.
Entries are written to a temporary file and renamed, so processes filling one cache at once never leave or read
half an entry.

    cache = probe_cache(model_args, model, feature_extractor, data_args, output_dir)
    cache.fill(paths, model, feature_extractor, load_audio)
    means = cache.stack(paths)            # [clips, layers + 1, hidden_size] float32
"""

import contextlib
import hashlib
import json
import os
import re
import time
from pathlib import Path

import numpy as np
import torch
from huggingface_hub import try_to_load_from_cache
from tqdm import tqdm

from ser_hf.data.audio import SAMPLE_RATE
from ser_hf.data.prepare import cache_dir_for
from ser_hf.errors import count
from ser_hf.storage import atomic_write, require_free_space, write_text_atomic

PROBE_CACHE_DIRNAME = ".ser_hf_probe_cache"
_VERSION = 1  # bump when what is cached changes, so that old means are not reused

# The classification head's parameters, with the same names in all five architectures.
HEAD_PARAMETERS = ("layer_weights", "projector.weight", "projector.bias", "classifier.weight", "classifier.bias")
# Config fields of the head, the label set and the run (the Trainer sets use_cache): they do not change what the
# encoder computes, and a cross-validation's folds must find the cache its parent process filled.
_HEAD_CONFIG_FIELDS = {"id2label", "label2id", "num_labels", "use_weighted_layer_sum", "classifier_proj_size",
                       "architectures", "_name_or_path", "transformers_version", "problem_type", "use_cache",
                       "output_hidden_states", "output_attentions", "return_dict"}
_WEIGHT_FILES = ("*.safetensors", "*.safetensors.index.json", "*.bin", "*.bin.index.json")


def _sha1(text):
    return hashlib.sha1(text.encode()).hexdigest()


def _weights_identity(model_args, model):
    """What pins the encoder's weights: the files of a local folder, the Hub commit, or the random weights."""
    name = model_args.model_name_or_path
    if name is None:
        # A random encoder is what set_seed made it: its tensors are its identity (small enough to hash).
        digest = hashlib.sha1()
        for key, tensor in sorted(model.state_dict().items()):
            if key not in HEAD_PARAMETERS:
                digest.update(key.encode())
                digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return {"random_init_sha1": digest.hexdigest()}
    folder = Path(name).expanduser()
    if folder.is_dir():
        files = sorted({p for pattern in _WEIGHT_FILES for p in folder.glob(pattern)})
        return {"folder": str(folder.resolve()),
                "files": [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]}
    cached = try_to_load_from_cache(name, "config.json", revision=model_args.model_revision)
    # The Hub cache keeps each commit in snapshots/<commit>/: a moved branch gives a new commit, a new cache.
    return {"commit": Path(cached).parent.name if isinstance(cached, str) else model_args.model_revision}


def encoder_identity(model_args, model, feature_extractor):
    """What the cached means depend on, as a JSON-able dict (its hash names the cache folder).

    The model's name or folder and revision, a hash of its config without the head's and the labels' fields, a
    hash of the feature extractor's settings, and the weights: a local folder's weight files (name, size,
    modification time), the Hub commit in the local cache, or for a randomly initialised encoder a hash of its
    tensors.
    """
    config = {k: v for k, v in model.config.to_dict().items() if k not in _HEAD_CONFIG_FIELDS}
    return {
        "version": _VERSION,
        "model": model_args.model_name_or_path or f"{model.config.model_type} (random init)",
        "model_type": model.config.model_type,
        "revision": model_args.model_revision,
        "config_sha1": _sha1(json.dumps(config, sort_keys=True, default=str)),
        "feature_extractor_sha1": _sha1(feature_extractor.to_json_string()),
        "weights": _weights_identity(model_args, model),
    }


@torch.no_grad()
def layer_means(model, feature_extractor, array, device=None):
    """The time mean of every hidden state the head weighs, for one clip run whole as the pipeline runs it.

    Args:
        model: an audio classifier built with `use_weighted_layer_sum` (so it returns every hidden state).
        feature_extractor: its feature extractor.
        array: the clip, 1-D 16 kHz float32.
        device: where the model is (default: where its parameters are).

    Returns:
        A float32 array [num_hidden_layers + 1, hidden_size].
    """
    device = device or next(model.parameters()).device
    inputs = feature_extractor(np.asarray(array, dtype=np.float32), sampling_rate=SAMPLE_RATE, return_tensors="pt")
    # Every input the feature extractor gives (the attention mask too, all ones for one clip), as the pipeline.
    outputs = model(**{key: value.to(device) for key, value in inputs.items()}, output_hidden_states=True)
    hidden = torch.stack(outputs.hidden_states, dim=1)[0]  # [layers + 1, frames, hidden]
    return hidden.float().mean(dim=1).cpu().numpy()


@contextlib.contextmanager
def one_cpu_thread(enabled=True):
    """torch on one CPU thread inside the block, as many as before after it.

    For work made of small operations (one clip through a small encoder, a probe head's steps): on this project's
    2-core machine with another process busy on one core, two threads made the demo encoder's pass 20x slower
    (268 against 14 ms a clip) and a head epoch 50x slower than one thread, as each thread waits for the other;
    on an idle machine one thread was as fast (the demo corpus's 1440 clips: 15.9 s against 15.6 s). Parallel
    folds are separate processes anyway.
    """
    threads = torch.get_num_threads()
    if enabled:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _atomic_save(array, target):
    # A unique temporary name per writer (threads and processes alike), then an atomic rename; a full disk is one
    # line (WriteFailed) and the entries written so far stay.
    with atomic_write(target, "wb", "rerun the same command: the clips computed so far are kept") as out:
        np.save(out, array)


class LayerMeansCache:
    """Per-layer time means of one encoder's hidden states, one `.npy` per audio file version.

    Args:
        cache_root: the folder holding one subfolder per encoder (`<corpus>/.ser_hf_probe_cache`).
        identity: `encoder_identity(...)`; its hash names this encoder's subfolder.
    """

    def __init__(self, cache_root, identity):
        self.identity = identity
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(str(identity["model"])).name)[:40].strip("_") or "encoder"
        self.cache_dir = Path(cache_root) / f"{slug}-{_sha1(json.dumps(identity, sort_keys=True))[:16]}"

    def entry(self, path):
        """The cache file for the current version of audio file `path` (which need not exist yet)."""
        path = os.path.abspath(path)
        stat = os.stat(path)
        name = _sha1(f"{_VERSION}:{path}")[:24]
        return self.cache_dir / f"{name}-{stat.st_size}-{stat.st_mtime_ns}.npy"

    def missing(self, paths):
        """The files among `paths` without a current entry, each once, in order."""
        return [p for p in dict.fromkeys(map(str, paths)) if not self.entry(p).exists()]

    def fill(self, paths, model, feature_extractor, load_audio, device=None, progress=True):
        """Run every clip that has no entry through the encoder, one clip at a time, and store its means.

        On the CPU this runs on one thread (`one_cpu_thread`); parallel folds are separate processes.

        Args:
            paths: audio files (already scanned).
            model: the classifier with `use_weighted_layer_sum` (its encoder is what is cached).
            feature_extractor: its feature extractor.
            load_audio: path -> 1-D 16 kHz float32 array (`ser_hf.data.prepare.audio_loader`).
            device: where to run the encoder (default: where the model is).
            progress: a tqdm bar while anything is computed.

        Returns:
            (clips computed, seconds spent computing them).
        """
        todo = self.missing(paths)
        if not todo:
            return 0, 0.0
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        about = self.cache_dir / "encoder.json"
        if not about.exists():  # for people looking at the folder: which encoder these are
            write_text_atomic(about, json.dumps(self.identity, indent=2))
        was_training = model.training
        device = device or next(model.parameters()).device
        start = time.perf_counter()
        try:
            with one_cpu_thread(device.type == "cpu"):
                model.eval()
                for i, path in enumerate(tqdm(todo, desc="encoder features for the probe (once)", unit="clip",
                                              disable=not progress)):
                    means = layer_means(model, feature_extractor, load_audio(path), device)
                    if i == 0:  # every clip's means have this size: refuse a fill the disk cannot hold, up front
                        require_free_space(self.cache_dir, means.nbytes * len(todo) + 128 * len(todo),
                                           f"the probe cache of {count(len(todo), 'clip')}",
                                           "free space there, or put the caches on another disk with --cache_dir DIR")
                    self._write(path, means)
        finally:
            model.train(was_training)
        return len(todo), time.perf_counter() - start

    def _write(self, path, means):
        target = self.entry(path)
        _atomic_save(means, target)
        prefix = target.name.split("-", 1)[0]
        for stale in self.cache_dir.glob(f"{prefix}-*.npy"):  # earlier versions of the same file
            if stale != target:
                stale.unlink(missing_ok=True)

    def load(self, path):
        """The means of one clip, memory-mapped read-only. Raises FileNotFoundError when not filled."""
        return np.load(self.entry(path), mmap_mode="r")

    def stack(self, paths):
        """The means of `paths` as one float32 array [clips, layers + 1, hidden_size]."""
        return np.stack([self.load(p) for p in paths]).astype(np.float32, copy=False)


def probe_cache(model_args, model, feature_extractor, data_args, report_dir):
    """The cache of this encoder, beside the corpus's other caches (`cache_dir_for`)."""
    root = cache_dir_for(data_args, report_dir) / PROBE_CACHE_DIRNAME
    return LayerMeansCache(root, encoder_identity(model_args, model, feature_extractor))
