"""Decode and resample every clip once: 16 kHz mono float32 arrays on disk, memory-mapped by every later epoch.

Without it every epoch decodes each file again and resamples it (RAVDESS is 48 kHz): on a 2-core machine that
competes with the model for the same cores, every epoch, every fold. The arrays are exactly what the `datasets`
`Audio(sampling_rate=16_000)` column gave before (torchcodec's resampler, channels averaged), so training is
unchanged; augmentation stays on the fly.

A clip whose decoded samples are all whole multiples of 1/32768 (a 16-bit file at 16 kHz, mono or with equal
channels: IEMOCAP, MSP-Podcast, EmoDB, CREMA-D) is stored as int16 and read back as exactly the same float32: half
the disk and page cache. Any other clip (resampled, e.g. RAVDESS's 48 kHz, or 24-bit) stays float32.

Faults a long run must survive: before decoding, the free space of the cache folder is checked against an estimate
of what the entries will take (too little: one line and exit 2, nothing written); a disk that fills up anyway, or
fails, stops the fill with one line (`WriteFailed`, exit 1) and leaves no temporary file; temporary files of a
killed fill are removed by the next one; and an entry whose size does not match its header (a copy of the corpus
folder cut short) is decoded again with a warning, never read into a batch mid-epoch.

An entry's name holds the file's absolute path (hashed), size and modification time, the keys of the audio scan's
cache: a file that changes gets a new entry, and the stale one is deleted when the new one is written.

    cache = DecodedAudioCache(Path(data_dir) / AUDIO_CACHE_DIRNAME)
    cache.fill(paths)                    # decodes what is missing, in parallel
    array = cache.load(paths[0])         # float32: a read-only memory map, or a copy of an int16 entry
"""

import contextlib
import errno
import hashlib
import logging
import os
import socket
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ser_hf.data.audio import SAMPLE_RATE, decode_16k_mono
from ser_hf.errors import STORAGE_ERRNOS, WriteFailed, count, sample_text
from ser_hf.storage import STALE_AFTER_S, require_free_space

logger = logging.getLogger(__name__)

AUDIO_CACHE_DIRNAME = ".ser_hf_audio_cache"
_VERSION = 1  # bump when decode_16k_mono changes, so that old arrays are not reused
_HOST = socket.gethostname()  # in temporary names: a cache on a shared disk is filled from several machines


_PCM16 = 32768.0  # a 16-bit sample k decodes to k / 32768, exactly, in float32


def compact(array):
    """int16 when it holds `array` exactly (every sample k / 32768 with k a 16-bit integer), else `array`."""
    scaled = array * np.float32(_PCM16)  # exact: a power of two
    if scaled.size and np.array_equal(np.rint(scaled), scaled) and scaled.min() >= -_PCM16 and scaled.max() < _PCM16:
        return scaled.astype(np.int16)
    return array


def entry_intact(target) -> bool:
    """Whether a cache entry is a 1-D float32 / int16 array whose file size is what its header says (a truncated or
    garbage file is not). Reads the header only, about 128 bytes."""
    try:
        with open(target, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in read:
                return False
            shape, fortran, dtype = read[version](handle)
            data_start = handle.tell()
    except (OSError, ValueError, EOFError):
        return False
    return (len(shape) == 1 and not fortran and dtype in (np.dtype(np.float32), np.dtype(np.int16))
            and os.path.getsize(target) == data_start + shape[0] * dtype.itemsize)


def estimated_bytes(path) -> int:
    """About what `path`'s entry will take: 2 bytes a sample for a 16-bit 16 kHz file, else 4 (float32)."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception:  # a format soundfile cannot read (torchcodec decodes it): the file's size, generously
        return 8 * os.path.getsize(path)
    exact16 = info.samplerate == SAMPLE_RATE and info.subtype in ("PCM_16", "PCM_S8", "PCM_U8")
    return int(info.duration * SAMPLE_RATE) * (2 if exact16 else 4) + 128


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _write_entry(args):
    path, target = args
    array = compact(decode_16k_mono(path))
    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}@{_HOST}")
    try:
        with open(tmp, "wb") as handle:
            np.save(handle, array)
        os.replace(tmp, target)  # atomic: a killed fill never leaves half an array under the final name
    except BaseException as err:
        tmp.unlink(missing_ok=True)  # a full disk must not stay full of our partial files
        if isinstance(err, OSError) and err.errno is None:  # numpy's short write ("N requested and M written")
            raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} ({err})") from err
        raise
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
        """Decode every file that has no intact current entry, in `workers` processes.

        Args:
            paths: audio files (already scanned: a file that cannot be decoded raises here).
            workers: processes; default all cores; 1 decodes in this process.
            progress: show a tqdm bar when anything is decoded.

        Returns:
            How many files were decoded (0 when the cache already held them all).

        Raises:
            UsageError: the cache folder has less free space than the entries need (nothing is written).
            WriteFailed: the disk filled up or failed while writing (the entries written so far are kept).
        """
        self._remove_stale_temporaries()
        todo, damaged = [], []
        for path in dict.fromkeys(map(str, paths)):
            target = self.entry(path)
            if not target.exists():
                todo.append((path, target))
            elif not entry_intact(target):
                damaged.append(path)
                todo.append((path, target))
        if damaged:
            logger.warning("Audio cache %s: %s damaged (size not what the header says), decoded again: %s",
                           self.cache_dir, count(len(damaged), "entry", "entries"), sample_text(damaged))
        if not todo:
            return 0
        self._check_free_space([path for path, _ in todo])
        workers = min(workers or os.cpu_count() or 1, len(todo))
        done = 0
        try:
            with tqdm(total=len(todo), desc="decoding audio to 16 kHz (once)", unit="file", disable=not progress) as bar:
                if workers == 1:
                    for item in todo:
                        _write_entry(item)
                        done += 1
                        bar.update()
                else:
                    with ProcessPoolExecutor(max_workers=workers) as pool:
                        for _ in pool.map(_write_entry, todo, chunksize=max(1, len(todo) // (workers * 8))):
                            done += 1
                            bar.update()
        except OSError as err:
            if err.errno not in STORAGE_ERRNOS:
                raise
            self._remove_stale_temporaries()  # a worker killed mid-write leaves its file behind
            raise WriteFailed(f"writing the audio cache in {self.cache_dir} failed after {done} of "
                              f"{count(len(todo), 'clip')}: {os.strerror(err.errno)}. Free space and rerun the same "
                              "command (the clips decoded so far are kept), or set --audio_cache false to decode "
                              "every epoch instead") from err
        return len(todo)

    def _check_free_space(self, paths):
        """Refuse, before writing anything, a fill the folder has no room for."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        require_free_space(self.cache_dir, sum(estimated_bytes(p) for p in paths),
                           f"the audio cache of {count(len(paths), 'clip')}",
                           "free space there, put the caches on another disk with --cache_dir DIR, or set "
                           "--audio_cache false (every epoch then decodes the audio again, slower)")

    def _remove_stale_temporaries(self):
        """Temporary files of fills whose process is gone (killed, or failed on a full disk).

        A cache folder on a shared disk is filled by several machines: another machine's process ids mean nothing
        here, so its temporaries are removed only once an hour old (a live writer renames its file within seconds).
        """
        for tmp in self.cache_dir.glob("*.npy.tmp*") if self.cache_dir.is_dir() else ():
            pid, _, host = tmp.name.rsplit(".tmp", 1)[1].partition("@")
            if host and host != _HOST:
                with contextlib.suppress(OSError):
                    if time.time() - tmp.stat().st_mtime > STALE_AFTER_S:
                        tmp.unlink()
            elif not pid.isdigit() or not _pid_alive(int(pid)):
                tmp.unlink(missing_ok=True)

    def load(self, path):
        """The decoded clip as float32, exactly what `decode_16k_mono` gives (decoded now when `fill` has not seen
        the file): a read-only memory map of a float32 entry, a float32 copy of an int16 one."""
        target = self.entry(path)
        try:
            array = np.load(target, mmap_mode="r")
        except (OSError, ValueError, EOFError) as err:  # never filled, or damaged since `fill` checked it
            if not isinstance(err, FileNotFoundError):
                logger.warning("Audio cache entry %s of %s is damaged (%s): decoded again", target, path, err)
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            _write_entry((str(path), target))
            array = np.load(target, mmap_mode="r")
        return array.astype(np.float32) / np.float32(_PCM16) if array.dtype == np.int16 else array
