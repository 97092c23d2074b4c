"""Corpus loaders: each turns a folder of audio into metadata rows (path, speaker, emotion, ...)."""

import os
from pathlib import Path


def walk_files(root, skip_dirs=()):
    """Yield every file below `root` in sorted order, following folder symlinks without looping.

    Hidden folders (.git with its LFS store, caches, an interrupted extraction's temporary folder) hold no
    corpus clips, only copies, so they are not entered; nor are the folders named in `skip_dirs`.
    """
    seen = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        # os.walk order is filesystem order; sorting in place makes the row order reproducible.
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in skip_dirs)
        for filename in sorted(filenames):
            yield Path(dirpath) / filename
