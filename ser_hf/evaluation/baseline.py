"""Classical SER baseline: utterance-level prosodic/spectral features and an SVM.

A neural model is only worth its cost if it beats this. The features are the usual hand-crafted set
(MFCC statistics, pitch, energy, zero-crossing rate, duration, a speech-rate proxy); the SVM's
hyper-parameters are chosen by cross-validation grouped by speaker, so model selection is as
speaker-independent as the evaluation.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from concurrent.futures import ProcessPoolExecutor

import librosa
import numpy as np
import soundfile as sf
import soxr
from sklearn.model_selection import GridSearchCV, GroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from ser_hf.data.audio import SAMPLE_RATE
from ser_hf.data.prepare import load_corpus, prepare_corpus, resolve_data_args
from ser_hf.evaluation.metrics import compute_ser_metrics

logger = logging.getLogger(__name__)

N_MFCC = 20
F0_MIN, F0_MAX = 60.0, 600.0
_FRAME, _HOP = 1024, 256  # 64 ms / 16 ms: a frame must hold two periods of the lowest f0 for yin

FEATURE_NAMES = (
    [f"mfcc{i}_mean" for i in range(N_MFCC)]
    + [f"mfcc{i}_std" for i in range(N_MFCC)]
    + [f"delta_mfcc{i}_mean" for i in range(N_MFCC)]
    + ["f0_mean", "f0_std", "f0_range", "rms_mean", "rms_std", "zcr_mean", "duration", "onset_rate"]
)
N_FEATURES = len(FEATURE_NAMES)

C_GRID = (0.1, 1, 10, 100)
KERNELS = ("rbf", "linear")


def load_mono_16k(path) -> np.ndarray:
    """Read an audio file as 1-D float32 at 16 kHz (channels averaged, soxr resampling when needed)."""
    audio, sr = sf.read(path, dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    if sr != SAMPLE_RATE:
        audio = soxr.resample(audio, sr, SAMPLE_RATE).astype(np.float32)
    return audio


def features_from_array(audio: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Compute the fixed-length feature vector (`FEATURE_NAMES` order) of one waveform.

    Args:
        audio: 1-D float waveform.
        sr: its sample rate.

    Returns:
        float64 array of length `N_FEATURES`, always finite (statistics of an empty set are 0).
    """
    audio = np.nan_to_num(np.asarray(audio, dtype=np.float32).reshape(-1))
    duration = len(audio) / sr
    if len(audio) < _FRAME:
        # librosa's centred framing needs some signal; zero-padding a very short clip keeps one frame.
        audio = np.pad(audio, (0, _FRAME - len(audio)))
    mfcc = librosa.feature.mfcc(y=audio, sr=sr, n_mfcc=N_MFCC, n_fft=_FRAME, hop_length=_HOP)
    # mode="nearest" works for any number of frames; the default "interp" needs at least 9.
    delta = librosa.feature.delta(mfcc, mode="nearest")
    rms = librosa.feature.rms(y=audio, frame_length=_FRAME, hop_length=_HOP)[0]
    zcr = librosa.feature.zero_crossing_rate(audio, frame_length=_FRAME, hop_length=_HOP)[0]
    f0 = librosa.yin(audio, fmin=F0_MIN, fmax=F0_MAX, sr=sr, frame_length=_FRAME, hop_length=_HOP)
    # yin returns a value for every frame; keep "voiced-ish" ones: loud enough and not stuck at a search bound.
    n = min(len(f0), len(rms))
    loud = rms[:n] >= 0.1 * rms.max() if rms.max() > 0 else np.zeros(n, dtype=bool)
    voiced = f0[:n][loud & (f0[:n] > F0_MIN * 1.05) & (f0[:n] < F0_MAX * 0.95)]
    if voiced.size:
        # A 5-95 percentile range: yin's octave errors would otherwise decide max - min.
        f0_stats = [voiced.mean(), voiced.std(), np.percentile(voiced, 95) - np.percentile(voiced, 5)]
    else:
        f0_stats = [0.0, 0.0, 0.0]
    # onset_detect(y=...) ignores n_fft (2048 by default, longer than a short clip): build the envelope here.
    envelope = librosa.onset.onset_strength(y=audio, sr=sr, hop_length=_HOP, n_fft=_FRAME)
    onsets = librosa.onset.onset_detect(onset_envelope=envelope, sr=sr, hop_length=_HOP)
    onset_rate = len(onsets) / duration if duration > 0 else 0.0
    vector = np.concatenate(
        [
            mfcc.mean(axis=1),
            mfcc.std(axis=1),
            delta.mean(axis=1),
            f0_stats,
            [rms.mean(), rms.std(), zcr.mean(), duration, onset_rate],
        ]
    ).astype(np.float64)
    return np.nan_to_num(vector, nan=0.0, posinf=0.0, neginf=0.0)


def extract_features(path) -> np.ndarray:
    """Feature vector of one audio file (loaded as 16 kHz mono).

    Args:
        path: audio file readable by soundfile.

    Returns:
        float64 array of length `N_FEATURES` (names in `FEATURE_NAMES`).
    """
    return features_from_array(load_mono_16k(path), SAMPLE_RATE)


def _single_thread():
    threadpool_limits(1)


def extract_all(paths, workers: int | None = None) -> np.ndarray:
    """Feature matrix of many files, in parallel processes.

    Args:
        paths: audio files.
        workers: processes; None uses os.cpu_count(); 1 runs in this process (no pool start-up).

    Returns:
        float64 array of shape (len(paths), N_FEATURES), rows in the order of `paths`.
    """
    paths = [str(p) for p in paths]
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(paths) < 2:
        with threadpool_limits(1):  # clip-sized FFTs and BLAS calls only lose time to thread hand-offs
            rows = [extract_features(p) for p in tqdm(paths, desc="features")]
    else:
        # One BLAS/OpenMP thread per worker: the processes are the parallelism; more threads oversubscribe.
        with ProcessPoolExecutor(max_workers=workers, initializer=_single_thread) as pool:
            chunk = max(1, len(paths) // (workers * 8))
            rows = list(tqdm(pool.map(extract_features, paths, chunksize=chunk), total=len(paths), desc="features"))
    return np.stack(rows) if rows else np.empty((0, N_FEATURES))


def fit_svm(X_train, y_train, cv_groups=None, seed: int = 0, n_splits: int = 5, n_jobs: int | None = None):
    """Fit StandardScaler + SVC with a grid search over kernel and C, on training data only.

    Args:
        X_train: (n, N_FEATURES) training features.
        y_train: (n,) label ids.
        cv_groups: (n,) speaker ids; when given the inner CV is GroupKFold, so no speaker is in both an
            inner training and an inner validation fold. Without it, stratified K-fold (speakers may leak).
        seed: seed of the ungrouped CV shuffle and of the SVC.
        n_splits: inner CV folds (fewer when there are fewer speakers).
        n_jobs: parallel fits for GridSearchCV (None: one).

    Returns:
        the fitted `GridSearchCV`; `best_estimator_` is the pipeline refitted on all of X_train,
        `best_params_` / `best_score_` (balanced accuracy) the selection result.
    """
    X_train, y_train = np.asarray(X_train), np.asarray(y_train)
    pipeline = Pipeline(
        [
            ("scaler", StandardScaler()),
            # class_weight="balanced": we select and report unweighted accuracy, and RAVDESS has half as many
            # neutral clips as the other emotions.
            ("svc", SVC(gamma="scale", class_weight="balanced", random_state=seed)),
        ]
    )
    grid = {"svc__kernel": list(KERNELS), "svc__C": list(C_GRID)}
    if cv_groups is not None:
        cv_groups = np.asarray(cv_groups)
        cv = GroupKFold(n_splits=min(n_splits, len(np.unique(cv_groups))))
    else:
        min_class = int(np.bincount(np.unique(y_train, return_inverse=True)[1]).min())
        cv = StratifiedKFold(n_splits=max(2, min(n_splits, min_class)), shuffle=True, random_state=seed)
    search = GridSearchCV(pipeline, grid, scoring="balanced_accuracy", cv=cv, n_jobs=n_jobs, refit=True)
    search.fit(X_train, y_train, groups=cv_groups)
    return search


def evaluate_svm_fold(features, train_rows, eval_rows, label_names, seed: int = 0) -> dict:
    """Fit the SVM on one fold's training speakers and score it on the held-out ones.

    Args:
        features: {path: feature vector} covering every row (from `extract_all`, computed once per corpus).
        train_rows, eval_rows: metadata rows with `path`, `label` and `speaker` (no speaker in both).
        label_names: label names in id order.
        seed: seed of the SVC and of an ungrouped inner CV.

    Returns:
        dict with n_train, n_eval, best_params, inner_cv_ua and the SER metrics of the held-out rows
        (ua, wa, macro_f1, per_class_recall, confusion_matrix).
    """
    label_id = {name: i for i, name in enumerate(label_names)}
    X_train = np.stack([features[r["path"]] for r in train_rows])
    groups = [r.get("speaker") for r in train_rows]
    search = fit_svm(X_train, [label_id[r["label"]] for r in train_rows], seed=seed,
                     cv_groups=groups if all(groups) else None)
    predicted = search.predict(np.stack([features[r["path"]] for r in eval_rows]))
    metrics = compute_ser_metrics(predicted, [label_id[r["label"]] for r in eval_rows], label_names)
    return {
        "n_train": len(train_rows),
        "n_eval": len(eval_rows),
        "best_params": {key.removeprefix("svc__"): v for key, v in search.best_params_.items()},
        "inner_cv_ua": float(search.best_score_),
        **{m: float(metrics[m]) for m in ("ua", "wa", "macro_f1")},
        "per_class_recall": metrics["per_class_recall"],
        "confusion_matrix": metrics["confusion_matrix"],
    }


def svm_on_folds(data_args, folds, report_dir, workers=None, seed=0, corpus=None):
    """The classical SVM baseline on exactly the folds (and scanned files) the neural runs use.

    Features are extracted once for the whole corpus; each fold then fits on its training speakers only.

    Args:
        data_args: the recipe's DataArguments (resolved).
        folds: the folds to hold out in turn.
        report_dir: where the audio scan's report goes.
        workers: feature-extraction processes (default: all cores).
        seed: seed of the SVM and its inner cross-validation.
        corpus: `load_corpus(data_args)` when the caller already has it.

    Returns:
        {fold: result of `evaluate_svm_fold`, plus the fold's `eval_speakers`}.
    """
    splits_by_fold, label_names = {}, None
    if corpus is None and not data_args.train_manifest:
        corpus = load_corpus(data_args)  # once for every fold
    for k in folds:
        # A test fold stays out of the SVM's training too, as it does for the neural runs.
        prepared = prepare_corpus(dataclasses.replace(data_args, fold=k), report_dir, corpus=corpus, decode=False)
        label_names = prepared.label_names
        splits_by_fold[k] = prepared.splits
    paths = sorted({row["path"] for splits in splits_by_fold.values() for rows in splits.values() for row in rows})
    features = dict(zip(paths, extract_all(paths, workers=workers)))
    results = {}
    held = "test" if resolve_data_args(data_args).held_out_split == "test" else "validation"  # what the runs report
    for k, splits in splits_by_fold.items():
        results[k] = evaluate_svm_fold(features, splits["train"], splits[held], label_names, seed=seed)
        results[k]["eval_speakers"] = sorted({row["speaker"] for row in splits[held]}, key=str)  # None: unknown
        logger.info("SVM baseline, fold %d: UA %.3f  WA %.3f  macro-F1 %.3f", k, results[k]["ua"], results[k]["wa"],
                    results[k]["macro_f1"])
    return results
