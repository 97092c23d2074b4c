"""How the one-time data work grows with the corpus (`ser-hf bench --scale 1000 3000 10000`).

MSP-Podcast has over a hundred thousand segments; RAVDESS, on which the rest of the benchmark runs, 1440 clips. Before
a large corpus trains, every clip is scanned (`ser_hf.data.scan`), decoded once into the 16 kHz cache
(`ser_hf.data.audio_cache`) and, for probing, run through the encoder once (`ser_hf.models.probe_features`). This
measures each of those at several corpus sizes, each size in a fresh process with cold caches, so that a cost that
grows faster than the clip count, or memory that grows with it, shows in the table; a second pass (everything
cached: what a rerun or the next fold pays) is timed too.

The corpus is MSP-Podcast-shaped where it matters for these steps: 16 kHz 16-bit mono wav files, 1 to 3 s of noise
(mean 2 s; MSP-Podcast's segments are longer, so its per-clip decode costs more: the projection is per audio hour).
The probe cache is filled with the demo's small encoder: its figures show the cache's own cost and memory; the
per-clip cost at wav2vec2-base size is the benchmark's probe row.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

SCALE_RATE = 16_000
SCALE_SECONDS = (1.0, 3.0)
_STEPS = ("scan", "audio_cache", "probe_cache")


def scale_corpus(root, clips, seed=0):
    """`clips` 16 kHz 16-bit mono wav files under `root/<speaker>/`, 1-3 s of noise; reused when already there.

    Returns:
        The paths, in a fixed order (the first n of a larger corpus are a smaller one).
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    lengths = rng.uniform(*SCALE_SECONDS, size=clips)
    paths = []
    for i, seconds in enumerate(lengths):
        path = root / f"spk{i % 100:03d}" / f"clip{i:06d}.wav"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            samples = 0.1 * np.random.default_rng(i).standard_normal(int(seconds * SCALE_RATE))
            sf.write(path, samples.astype(np.float32), SCALE_RATE, subtype="PCM_16")
        paths.append(str(path))
    return paths


def _peak_rss_mb():
    """The peak resident memory so far of this process and of its largest finished child (Linux: kB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(own / 1024), round(children / 1024)


def _timed(step, function):
    start = time.perf_counter()
    result = function()
    seconds = time.perf_counter() - start
    own, workers = _peak_rss_mb()
    return result, {"step": step, "seconds": round(seconds, 3), "peak_rss_mb": own, "workers_peak_rss_mb": workers}


def measure_preparation(paths, scratch, workers=None, model_config="recipes/configs/demo.yaml"):
    """Scan, audio cache and probe cache of `paths`, cold and then again warm, in this process.

    Args:
        paths: the corpus's files.
        scratch: an empty folder for the caches.
        workers: scan and decode processes (default all cores).
        model_config: the recipe whose encoder fills the probe cache.

    Returns:
        [{"step", "pass" ("first" | "again"), "seconds", "peak_rss_mb", "workers_peak_rss_mb"}, ...]
    """
    import torch

    from ser_hf.config import parse_config
    from ser_hf.data.audio_cache import DecodedAudioCache
    from ser_hf.data.scan import scan_files
    from ser_hf.labels import label_maps
    from ser_hf.models.encoders import build_model
    from ser_hf.models.probe_features import LayerMeansCache, encoder_identity
    from ser_hf.training.probe import probe_model_args

    scratch = Path(scratch)
    audio = DecodedAudioCache(scratch / "audio")
    model_args = probe_model_args(parse_config(model_config, ["--output_dir", str(scratch / "unused")])[0])
    torch.manual_seed(0)
    model, extractor = build_model(model_args, *label_maps(["a", "b"]))
    probe = LayerMeansCache(scratch / "probe", encoder_identity(model_args, model, extractor))
    steps = {
        "scan": lambda: scan_files(paths, workers=workers, cache_path=scratch / "scan.json", progress=False),
        "audio_cache": lambda: audio.fill(paths, workers=workers, progress=False),
        "probe_cache": lambda: probe.fill(paths, model, extractor, audio.load, progress=False),
    }
    rows = []
    for again in (False, True):
        for step in _STEPS:
            _, row = _timed(step, steps[step])
            rows.append({**row, "pass": "again" if again else "first"})
    return rows


def measure_scale(sizes, corpus_dir, workers=None):
    """`measure_preparation` at each corpus size, each in its own process (its own peak memory, cold caches).

    Returns:
        {"sizes": [{"clips", "audio_hours", "cache_mb", "cache_mb_float32", "rows": measure_preparation's}, ...]}
    """
    paths = scale_corpus(corpus_dir, max(sizes))
    results = []
    for clips in sorted(sizes):
        with tempfile.TemporaryDirectory() as scratch:
            listing = Path(scratch) / "paths.json"
            listing.write_text(json.dumps(paths[:clips]))
            proc = subprocess.run([sys.executable, "-m", "ser_hf.experiments.scale", str(listing), scratch,
                                   str(workers or 0)], capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"the scale measurement at {clips} clips failed:\n{proc.stderr[-2000:]}")
            rows = json.loads(proc.stdout.strip().splitlines()[-1])
            cache = Path(scratch) / "audio"
            cache_bytes = sum(f.stat().st_size for f in cache.glob("*.npy"))
            samples = sum(sf.info(p).frames for p in paths[:clips])
        results.append({"clips": clips, "audio_hours": round(samples / SCALE_RATE / 3600, 3),
                        "cache_mb": round(cache_bytes / 2**20, 1), "cache_mb_float32": round(samples * 4 / 2**20, 1),
                        "rows": rows})
    return {"sizes": results}


def scale_markdown(report, project_hours=None):
    """One row per size and step: seconds, seconds per audio hour (flat when the cost is linear), peak memory.

    Args:
        report: `measure_scale`'s result.
        project_hours: a corpus size in audio hours to project the first pass to, from the largest size's rate.
    """
    lines = ["| clips | audio h | step | first pass s | s per audio h | again s | peak RSS MB | workers' peak MB |",
             "|---|---|---|---|---|---|---|---|"]
    for size in report["sizes"]:
        first = {row["step"]: row for row in size["rows"] if row["pass"] == "first"}
        again = {row["step"]: row for row in size["rows"] if row["pass"] == "again"}
        for step in _STEPS:
            row = first[step]
            lines.append(f"| {size['clips']} | {size['audio_hours']:.2f} | {step} | {row['seconds']:.1f} | "
                         f"{row['seconds'] / size['audio_hours']:.0f} | {again[step]['seconds']:.2f} | "
                         f"{row['peak_rss_mb']} | {row['workers_peak_rss_mb']} |")
    largest = report["sizes"][-1]
    lines.append(f"\nAudio cache: {largest['cache_mb']:.0f} MB for {largest['audio_hours']:.2f} h of 16-bit 16 kHz "
                 f"audio, against {largest['cache_mb_float32']:.0f} MB as float32.")
    if project_hours:
        first = {row["step"]: row["seconds"] for row in largest["rows"] if row["pass"] == "first"}
        rate = (first["scan"] + first["audio_cache"]) / largest["audio_hours"]
        lines.append(f"Projected scan + audio cache of {project_hours:g} h of audio at the largest size's rate: "
                     f"{rate * project_hours / 60:.0f} min, once (the probe cache: the probe row's seconds per clip "
                     "times the clips).")
    return "\n".join(lines)


if __name__ == "__main__":  # one size, in a fresh process: paths.json, scratch folder, workers (0: all cores)
    listing, scratch, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]) or None
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    print(json.dumps(measure_preparation(json.loads(Path(listing).read_text()), scratch, workers=workers)))
