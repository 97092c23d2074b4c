"""What every corpus loader shares: the walk over a corpus folder, and what marks a file as audio or as a
git-lfs pointer.

Lowest layer of the package: the data layer (audio scan, inference) imports these constants from here, so
that there is one definition of each.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path

# The rate the models take (wav2vec2-style encoders are pretrained on 16 kHz): the demo corpus is written at it
# and every clip is decoded to it (`ser_hf.data.audio` re-exports it for the training side).
SAMPLE_RATE = 16_000

# Files in a folder that ffmpeg (the pipeline's decoder) can read; other files are skipped when a folder is
# searched for audio (audiofolder trees, the files given to inference).
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".aiff", ".aif", ".wma", ".webm")

# How a git-lfs pointer file starts: a clone made without git-lfs, or a GitHub zip, holds these ~130-byte text
# files in place of the audio.
LFS_SIGNATURE = b"version https://git-lfs.github.com/spec/v1"

# The skip category for a clip found a second time; loaders warn about it instead of just counting it.
DUPLICATES = "duplicate clips (same name in another folder)"

_EXAMPLES = 3  # file names shown per skip category


def corpus_relative(path, root):
    """`path` relative to the corpus folder `root`, for the reports pushed with a model.

    Both sides are resolved first: the loaders resolve symlinks in clip paths, so a `data_dir` that is itself a
    link (data -> /mnt/corpora) would otherwise give "../../mnt/corpora/..." paths that differ from run to run and
    that `ser-hf compare` would not match.
    """
    return os.path.relpath(os.path.realpath(path), os.path.realpath(root))


def walk_files(root, skip_dirs=()):
    """Yield every file below `root` in sorted order, following folder symlinks without looping.

    Hidden folders (.git with its LFS store, caches, an interrupted extraction's temporary folder) hold no
    corpus clips, only copies, so they are not entered; nor are the folders named in `skip_dirs`.

    Args:
        root: the folder to walk.
        skip_dirs: folder names never entered (e.g. "__MACOSX").

    Yields:
        Path of each file, folders and files in sorted order.
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


class Rows(list):
    """A loader's metadata rows, and what it left out by label (counted, for the data report and the card).

    Attributes:
        excluded: {why: clips} of the corpus's clips that carry no label of the task, e.g. IEMOCAP's
            {"fru (not one of the 4 classes)": 1849}; empty when nothing was left out.
    """

    def __init__(self, rows=(), excluded=None):
        super().__init__(rows)
        self.excluded = dict(excluded or {})


class SkippedFiles:
    """The files a corpus loader skipped, counted per category with a few examples.

    A corpus folder can hold thousands of files that are not clips (video copies, macOS metadata, a second
    extraction): one log line per category, not per file, keeps the log readable.

    Args:
        root: the corpus folder; examples are shown relative to it.
    """

    def __init__(self, root: Path):
        self.root = root
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = {}

    def add(self, category: str, path: Path) -> None:
        """Count one skipped file.

        Args:
            category: why it was skipped, as the log names it (e.g. "song files", or `DUPLICATES`).
            path: the file, below `root`.
        """
        self.counts[category] += 1
        examples = self.examples.setdefault(category, [])
        if len(examples) < _EXAMPLES:
            examples.append(str(path.relative_to(self.root)))

    def describe(self) -> str:
        """What was skipped, for an error message.

        Returns:
            e.g. "2 names not of the RAVDESS form; 5 song files", or "no files at all".
        """
        return "; ".join(f"{n} {category}" for category, n in sorted(self.counts.items())) or "no files at all"

    def log(self, logger: logging.Logger, corpus: str) -> None:
        """A warning for duplicate clips (they mean the corpus was extracted twice), an info line per other category.

        Args:
            logger: the loader's logger.
            corpus: the corpus name in the messages, e.g. "RAVDESS".
        """
        if self.counts[DUPLICATES]:
            logger.warning(
                "%d %s clips appear more than once under %s (kept the first in sorted path order), e.g. %s",
                self.counts[DUPLICATES], corpus, self.root, ", ".join(self.examples[DUPLICATES]),
            )
        for category, count in sorted(self.counts.items()):
            if category != DUPLICATES:
                logger.info("Skipped %d %s under %s, e.g. %s", count, category, self.root,
                            ", ".join(self.examples[category]))
