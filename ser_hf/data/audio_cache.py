"""Decode and resample every clip once: 16 kHz mono float32 arrays on disk, memory-mapped by every later epoch.

Without it every epoch decodes each file again and resamples it (RAVDESS is 48 kHz): on a 2-core machine that
competes with the model for the same cores, every epoch, every fold. The arrays are exactly what the `datasets`
`Audio(sampling_rate=16_000)` column gave before (torchcodec's resampler, channels averaged), so training is
unchanged; augmentation stays on the fly.

A clip whose decoded samples are all whole multiples of 1/32768 (a 16-bit file at 16 kHz, mono or with equal
channels: IEMOCAP, MSP-Podcast, EmoDB, CREMA-D) is stored as int16 and read back as exactly the same float32: half
the disk and page cache. Any other clip (resampled, e.g. RAVDESS's 48 kHz, or 24-bit) stays float32.

An entry's name holds the file's absolute path (hashed), size and modification time, the keys of the audio scan's
cache: a file that changes gets a new entry, and the stale one is deleted when the new one is written.

    cache = DecodedAudioCache(Path(data_dir) / AUDIO_CACHE_DIRNAME)
    cache.fill(paths)                    # decodes what is missing, in parallel
    array = cache.load(paths[0])         # float32: a read-only memory map, or a copy of an int16 entry
"""

import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ser_hf.data.audio import decode_16k_mono

AUDIO_CACHE_DIRNAME = ".ser_hf_audio_cache"
_VERSION = 1  # bump when decode_16k_mono changes, so that old arrays are not reused


_PCM16 = 32768.0  # a 16-bit sample k decodes to k / 32768, exactly, in float32


def compact(array):
    """int16 when it holds `array` exactly (every sample k / 32768 with k a 16-bit integer), else `array`."""
    scaled = array * np.float32(_PCM16)  # exact: a power of two
    if scaled.size and np.array_equal(np.rint(scaled), scaled) and scaled.min() >= -_PCM16 and scaled.max() < _PCM16:
        return scaled.astype(np.int16)
    return array


def _write_entry(args):
    path, target = args
    array = compact(decode_16k_mono(path))
    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as handle:
        np.save(handle, array)
    os.replace(tmp, target)  # atomic: a killed fill never leaves half an array under the final name
    prefix = target.name.split("-", 1)[0]
    for stale in target.parent.glob(f"{prefix}-*.npy"):  # earlier versions of the same file
        if stale != target:
            stale.unlink(missing_ok=True)
    return len(array)


class DecodedAudioCache:
    """16 kHz mono arrays of audio files, one `.npy` per file version in `cache_dir`.

    Args:
        cache_dir: the folder (created when needed); beside the scan cache, in the corpus folder.
    """

    def __init__(self, cache_dir):
        self.cache_dir = Path(cache_dir)

    def entry(self, path):
        """The cache file for the current version of `path` (which need not exist yet)."""
        path = os.path.abspath(path)
        stat = os.stat(path)
        name = hashlib.sha1(f"{_VERSION}:{path}".encode()).hexdigest()[:24]
        return self.cache_dir / f"{name}-{stat.st_size}-{stat.st_mtime_ns}.npy"

    def fill(self, paths, workers=None, progress=True):
        """Decode every file that has no current entry, in `workers` processes.

        Args:
            paths: audio files (already scanned: a file that cannot be decoded raises here).
            workers: processes; default all cores; 1 decodes in this process.
            progress: show a tqdm bar when anything is decoded.

        Returns:
            How many files were decoded (0 when the cache already held them all).
        """
        todo = [(p, target) for p in dict.fromkeys(map(str, paths)) if not (target := self.entry(p)).exists()]
        if not todo:
            return 0
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        workers = min(workers or os.cpu_count() or 1, len(todo))
        with tqdm(total=len(todo), desc="decoding audio to 16 kHz (once)", unit="file", disable=not progress) as bar:
            if workers == 1:
                for item in todo:
                    _write_entry(item)
                    bar.update()
            else:
                with ProcessPoolExecutor(max_workers=workers) as pool:
                    for _ in pool.map(_write_entry, todo, chunksize=max(1, len(todo) // (workers * 8))):
                        bar.update()
        return len(todo)

    def load(self, path):
        """The decoded clip as float32, exactly what `decode_16k_mono` gives (decoded now when `fill` has not seen
        the file): a read-only memory map of a float32 entry, a float32 copy of an int16 one."""
        target = self.entry(path)
        try:
            array = np.load(target, mmap_mode="r")
        except FileNotFoundError:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            _write_entry((str(path), target))
            array = np.load(target, mmap_mode="r")
        return array.astype(np.float32) / np.float32(_PCM16) if array.dtype == np.int16 else array
