"""Offline demo corpus: acted-emotion speech synthesised with espeak-ng, laid out exactly like RAVDESS speech.

The demo recipe needs a corpus that exists on a fresh machine without any download, and that the RAVDESS
loader reads unchanged. Each emotion gets the prosody that Murray & Arnott (1993, "Toward the simulation of
emotion in synthetic speech: a review of the literature on human vocal emotion", JASA 93(2)) list for it;
calm and surprised, which they do not cover, are set by analogy. It is a demo of the pipeline, not a
benchmark of emotion recognition (see data_cards/demo.md).

Usage:
    python -m ser_hf.corpora.demo --out_dir data/demo --seed 0
"""

import argparse
import concurrent.futures
import contextlib
import fcntl
import io
import json
import logging
import os
import pathlib
import shutil
import subprocess

import numpy as np
import soundfile as sf
import soxr
from tqdm.auto import tqdm

from ser_hf.console import command_logging
from ser_hf.corpora.files import SAMPLE_RATE
from ser_hf.corpora.ravdess import RAVDESS_STATEMENTS
from ser_hf.errors import UsageError
from ser_hf.labels import RAVDESS_EMOTIONS

logger = logging.getLogger(__name__)

# Bump when anything that changes the audio changes, so that an old corpus on disk is regenerated.
CORPUS_VERSION = 1
MARKER_NAME = ".ser_hf_demo.json"
MAX_ACTORS = 24
MAX_SECONDS = 5.0
# RAVDESS' strong intensity is a bigger version of the same emotion: scale its deviation from neutral.
STRONG_SCALE = 1.8
TRIM_TOP_DB = 40
TRIM_MARGIN_SECONDS = 0.05

# Per-emotion deviation from neutral (Murray & Arnott 1993, table I). rate and volume multiply the actor's
# speed (-s) and amplitude (-a); pitch and range are SSML <prosody> percentages; word_gap is espeak-ng's -g
# (10 ms units); pause_ms is a <break> mid-sentence; stress emphasises the verb (<emphasis>, measured to change
# the audio); terminal picks espeak-ng's clause contour
# (measured: "." falls, "!" peaks then falls abruptly, "," rises smoothly, "?" rises).
PROSODY = {
    "neutral": dict(rate=1.00, pitch=0, range=0, volume=1.00, word_gap=0, pause_ms=0, stress=False, terminal="."),
    # Not in Murray & Arnott: a relaxed neutral, slower, a little lower, narrow and soft.
    "calm": dict(rate=0.90, pitch=-5, range=-35, volume=0.80, word_gap=0, pause_ms=0, stress=False, terminal="."),
    # Faster or slower, much higher, much wider, smooth upward inflections.
    "happy": dict(rate=1.10, pitch=20, range=60, volume=1.15, word_gap=0, pause_ms=0, stress=False, terminal=","),
    # Slightly slower, slightly lower, slightly narrower, lower intensity, downward inflections, pauses.
    "sad": dict(rate=0.85, pitch=-10, range=-30, volume=0.70, word_gap=2, pause_ms=150, stress=False, terminal="."),
    # Slightly faster, very much higher, much wider, higher intensity, abrupt downward contour.
    "angry": dict(rate=1.10, pitch=30, range=70, volume=1.50, word_gap=0, pause_ms=0, stress=True, terminal="!"),
    # Much faster, very much higher, much wider, normal intensity.
    "fearful": dict(rate=1.35, pitch=45, range=50, volume=1.00, word_gap=0, pause_ms=0, stress=False, terminal="."),
    # Very much slower, very much lower, slightly wider, lower intensity, wide downward terminal inflection.
    "disgust": dict(rate=0.70, pitch=-20, range=20, volume=0.80, word_gap=1, pause_ms=100, stress=False, terminal="."),
    # Not in Murray & Arnott: much higher, wide range, rising terminal contour; not faster, unlike fear.
    "surprised": dict(rate=1.00, pitch=40, range=80, volume=1.05, word_gap=0, pause_ms=0, stress=False, terminal="?"),
}

# Twelve distinct espeak-ng voice variants per sex (all shipped with espeak-ng 1.51), shuffled per seed;
# RAVDESS actors are male when odd, female when even.
MALE_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "adam", "caleb", "klatt", "Mike", "travis")
FEMALE_VARIANTS = ("f1", "f2", "f3", "f4", "f5", "Alicia", "Annie", "aunty", "belinda", "linda", "steph", "grandma")
# Per-actor ranges: espeak-ng base pitch (-p, 0-99), speed (-s, words per minute), amplitude (-a, 0-200),
# and how strongly the actor acts (a multiplier on every emotion's deviation), so actors differ as in RAVDESS.
ACTOR_PITCH = (30, 65)
ACTOR_RATE = (145, 195)
ACTOR_AMPLITUDE = (36, 56)
ACTOR_EXPRESSIVENESS = (0.7, 1.3)
# Per-utterance jitter (standard deviations) so that repetitions differ.
JITTER_RATE, JITTER_PITCH, JITTER_AMPLITUDE = 0.05, 4.0, 0.08


def _file_name(emotion, intensity, statement, repetition, actor):
    # modality 03 = audio-only, vocal channel 01 = speech, as RAVDESS' Audio_Speech_Actors_01-24.
    return f"03-01-{emotion:02d}-{intensity:02d}-{statement:02d}-{repetition:02d}-{actor:02d}.wav"


def _utterances(n_actors):
    """Every (actor, emotion code, intensity, statement, repetition) of the corpus, in a fixed order."""
    for actor in range(1, n_actors + 1):
        for emotion in range(1, len(RAVDESS_EMOTIONS) + 1):
            # RAVDESS has no strong neutral.
            for intensity in (1,) if emotion == 1 else (1, 2):
                for statement in (1, 2):
                    for repetition in (1, 2):
                        yield actor, emotion, intensity, statement, repetition


def _actor_voice(seed, actor):
    """The actor's voice variant, base pitch, speed, amplitude and expressiveness, fixed by (seed, actor)."""
    variants = MALE_VARIANTS if actor % 2 else FEMALE_VARIANTS
    # One random stream per purpose (first key after the seed), so that no two draw the same numbers.
    order = np.random.default_rng([seed, 0, actor % 2]).permutation(len(variants))
    rng = np.random.default_rng([seed, 1, actor])
    return {
        "voice": f"{rng.choice(['en-us', 'en'])}+{variants[order[(actor - 1) // 2]]}",
        "pitch": rng.uniform(*ACTOR_PITCH),
        "rate": rng.uniform(*ACTOR_RATE),
        "amplitude": rng.uniform(*ACTOR_AMPLITUDE),
        "expressiveness": rng.uniform(*ACTOR_EXPRESSIVENESS),
    }


def _espeak_command(espeak, seed, actor, emotion, intensity, statement, repetition):
    """The espeak-ng command line (SSML on) for one utterance."""
    voice = _actor_voice(seed, actor)
    prosody = PROSODY[RAVDESS_EMOTIONS[emotion - 1]]
    scale = voice["expressiveness"] * (STRONG_SCALE if intensity == 2 else 1.0)
    # Each utterance gets its own stream so that results do not depend on the order workers run in.
    rng = np.random.default_rng([seed, 2, actor, emotion, intensity, statement, repetition])
    # Multiplicative controls scale in the log domain so that "x1.8 the deviation" stays symmetric.
    rate = voice["rate"] * prosody["rate"] ** scale * rng.lognormal(0.0, JITTER_RATE)
    amplitude = voice["amplitude"] * prosody["volume"] ** scale * rng.lognormal(0.0, JITTER_AMPLITUDE)
    base_pitch = voice["pitch"] + rng.normal(0.0, JITTER_PITCH)
    # espeak-ng stops widening the range beyond +100 % (measured), and -50 % pitch is already an octave down.
    pitch = np.clip(prosody["pitch"] * scale, -50, 150)
    pitch_range = np.clip(prosody["range"] * scale, -90, 100)
    words = RAVDESS_STATEMENTS[statement].split()
    pause = round(prosody["pause_ms"] * scale)
    if prosody["stress"]:
        words[2] = f"<emphasis>{words[2]}</emphasis>"
    if pause:
        words.insert(3, f'<break time="{pause}ms"/>')
    ssml = (
        f'<speak><prosody pitch="{pitch:+.0f}%" range="{pitch_range:+.0f}%">'
        f'{" ".join(words)}{prosody["terminal"]}</prosody></speak>'
    )
    return [
        espeak, "-m", "--stdout", "-v", voice["voice"],
        "-s", str(int(np.clip(rate, 80, 450))),
        "-p", str(int(np.clip(base_pitch, 0, 99))),
        "-a", str(int(np.clip(amplitude, 1, 200))),
        "-g", str(round(prosody["word_gap"] * scale)),
        ssml,
    ]  # fmt: skip


def _speech_bounds(audio, frame=512):
    """Sample span of the frames within TRIM_TOP_DB of the loudest one, as librosa.effects.trim finds it.

    Done here in numpy because importing librosa.effects costs several seconds per process, more than
    synthesising a small corpus.
    """
    n_frames = len(audio) // frame
    power = np.square(audio[: n_frames * frame].reshape(n_frames, frame)).mean(axis=1)
    loud = np.flatnonzero(power > power.max(initial=0.0) * 10 ** (-TRIM_TOP_DB / 10))
    if loud.size == 0:
        return 0, len(audio)
    return loud[0] * frame, min(len(audio), (loud[-1] + 1) * frame)


def _synthesize_one(path, command):
    """Run espeak-ng, resample to 16 kHz, trim silence, cap the length and write the wav atomically."""
    result = subprocess.run(command, capture_output=True, check=True)
    audio, rate = sf.read(io.BytesIO(result.stdout), dtype="float32")
    # soxr (librosa's resampler) called directly: librosa.resample imports scipy.signal, seconds per process.
    audio = soxr.resample(audio, rate, SAMPLE_RATE, quality="HQ")
    # Keep a short margin around speech: onsets and plosive releases fall below the trim threshold.
    start, end = _speech_bounds(audio)
    margin = int(TRIM_MARGIN_SECONDS * SAMPLE_RATE)
    audio = audio[max(0, start - margin) : min(len(audio), end + margin)][: int(MAX_SECONDS * SAMPLE_RATE)]
    # Convert ourselves: libsndfile does not clip float input, and resampling can overshoot full scale.
    pcm = np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    sf.write(tmp, pcm, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    os.replace(tmp, path)


def _read_marker(out_dir):
    try:
        return json.loads((out_dir / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return None


def _write_marker(out_dir, content):
    tmp = out_dir / f"{MARKER_NAME}.tmp"
    tmp.write_text(json.dumps(content, indent=2) + "\n")
    os.replace(tmp, out_dir / MARKER_NAME)


def synthesize_demo_corpus(
    out_dir: str | os.PathLike, seed: int = 0, n_actors: int = 24, workers: int | None = None
) -> pathlib.Path:
    """Generate the RAVDESS-shaped demo corpus with espeak-ng, or reuse a complete one.

    Writes `Actor_NN/03-01-EE-II-SS-RR-NN.wav` (16 kHz mono 16-bit PCM, silence trimmed, at most 5 s):
    60 files per actor, 1440 for 24 actors. The same seed gives byte-identical files. A marker file
    `.ser_hf_demo.json` records a finished corpus; when it matches, nothing is regenerated.

    Args:
        out_dir: folder of the corpus; created when missing.
        seed: seed of the actors' voices and of the per-utterance jitter.
        n_actors: number of actors, 1 to 24 (odd male, even female).
        workers: parallel espeak-ng processes; None uses os.cpu_count().

    Returns:
        out_dir as a pathlib.Path.

    Raises:
        UsageError: espeak-ng is not installed, or out_dir holds audio this function did not write.
        UsageError: n_actors out of range.
    """
    out_dir = pathlib.Path(out_dir)
    if not 1 <= n_actors <= MAX_ACTORS:
        raise UsageError(f"n_actors must be between 1 and {MAX_ACTORS}, got {n_actors}")
    with _one_writer(out_dir):
        return _synthesize_or_reuse(out_dir, seed, n_actors, workers)


@contextlib.contextmanager
def _one_writer(out_dir):
    """Several processes asking for the corpus at once (the workers of a shared sweep started together on a fresh
    machine): one synthesises it while the others wait, then they find it complete. An flock is released when its
    process dies, so a killed synthesis never blocks the next."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(out_dir.parent / f".{out_dir.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _synthesize_or_reuse(out_dir, seed, n_actors, workers):
    utterances = list(_utterances(n_actors))
    expected = {_relative_path(u) for u in utterances}
    present = {p.relative_to(out_dir).as_posix() for p in out_dir.glob("Actor_*/*.wav")}
    wanted = {"seed": seed, "version": CORPUS_VERSION, "n_actors": n_actors, "n_files": len(expected)}
    if _is_complete(out_dir, wanted, present, expected):
        logger.info("Reusing the demo corpus in %s (%d files, seed %d)", out_dir, len(present), seed)
        return out_dir
    espeak = _find_espeak()
    out_dir.mkdir(parents=True, exist_ok=True)
    # Marks the folder as ours before any wav exists, so that a killed run can be regenerated over.
    _write_marker(out_dir, {**wanted, "complete": False})
    # Files of an earlier, larger corpus and temporaries of a killed run would otherwise linger.
    for stale in [*(out_dir / p for p in present - expected), *out_dir.glob("Actor_*/.*.tmp")]:
        stale.unlink()
    logger.info("Synthesising %d demo files into %s with %s", len(expected), out_dir, espeak)
    _synthesize_all(out_dir, espeak, seed, utterances, workers)
    version = subprocess.run([espeak, "--version"], capture_output=True, text=True).stdout.strip()
    _write_marker(out_dir, {**wanted, "complete": True, "espeak_ng": version})
    return out_dir


def _relative_path(utterance):
    actor = utterance[0]
    return f"Actor_{actor:02d}/{_file_name(*utterance[1:], actor)}"


def _is_complete(out_dir, wanted, present, expected):
    """Whether `out_dir` holds the finished corpus `wanted` describes.

    Raises:
        UsageError: `out_dir` holds RAVDESS-named audio without our marker.
    """
    marker = _read_marker(out_dir)
    if marker and marker.get("complete") and all(marker.get(k) == v for k, v in wanted.items()):
        if present == expected:
            return True
        logger.warning("%s has %d of %d files: regenerating", out_dir, len(present & expected), len(expected))
    if present and marker is None:
        # Never overwrite a real RAVDESS copy, which has the very same file names.
        raise UsageError(f"{out_dir} holds Actor_*/*.wav files not written by this generator; use another folder")
    return False


def _find_espeak():
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise UsageError(
            "espeak-ng is needed to synthesise the demo corpus: `apt-get install -y espeak-ng` (Debian/Ubuntu) "
            "or `brew install espeak-ng` (macOS)"
        )
    return espeak


def _synthesize_all(out_dir, espeak, seed, utterances, workers):
    # Threads suffice: the work is in espeak-ng subprocesses and in soxr/numpy, which release the GIL.
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
        futures = [
            pool.submit(_synthesize_one, out_dir / _relative_path(u), _espeak_command(espeak, seed, *u))
            for u in utterances
        ]
        try:
            for future in tqdm(concurrent.futures.as_completed(futures), total=len(futures), desc="demo corpus"):
                future.result()
        except BaseException:
            # Fail (or stop on Ctrl-C) now rather than after the remaining queue has run.
            for future in futures:
                future.cancel()
            raise


def main(argv=None):
    """Command line: `python -m ser_hf.corpora.demo --out_dir data/demo [--seed 0 --n_actors 24 --workers N]`.

    Args:
        argv: the arguments (default: sys.argv[1:]).
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out_dir", required=True, help="folder of the corpus (Actor_01 ... Actor_NN)")
    parser.add_argument("--seed", type=int, default=0, help="seed of voices and jitter; same seed, same bytes")
    parser.add_argument("--n_actors", type=int, default=MAX_ACTORS, help="number of actors, 1 to 24")
    parser.add_argument("--workers", type=int, default=None, help="parallel espeak-ng runs (default: CPU count)")
    args = parser.parse_args(argv)
    with command_logging():
        synthesize_demo_corpus(args.out_dir, seed=args.seed, n_actors=args.n_actors, workers=args.workers)


if __name__ == "__main__":
    main()
