"""Speaker-independent folds and splits.

An SER model evaluated on speakers it was trained on mostly measures speaker recognition, so
every split here is by speaker: a speaker's clips all land in one split. The one exception,
`stratified_split`, is the fallback for corpora without speakers, and it warns that speakers may leak.

Fold scheme (deterministic, documented in data_cards/ravdess.md): speakers are grouped by
gender, each group is sorted (natural order, so "Actor_2" < "Actor_10") and cut into `n_folds`
contiguous chunks of near-equal size; fold k is the union of the k-th chunk of every gender.
For RAVDESS (odd actors male, even female; 12 + 12) with 6 folds that gives
fold k = actors 4k+1 .. 4k+4, i.e. 2 male + 2 female actors per fold:
fold 0 = 1-4, fold 1 = 5-8, ..., fold 5 = 21-24.
"""

from __future__ import annotations

import logging
import random
import re
from collections import Counter, defaultdict

from ser_hf.errors import SPEAKER_LEAK_WARNING, UsageError, sample_text

logger = logging.getLogger(__name__)


def _natural_key(text: str) -> list:
    """Sort key that orders digit runs numerically ("Actor_2" before "Actor_10")."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", str(text)) if part]


def speaker_folds(
    speaker_to_gender: dict[str, str], n_folds: int = 6, seed: int | None = None
) -> list[list[str]]:
    """Partition speakers into gender-balanced folds.

    Each gender's speakers are cut into `n_folds` contiguous chunks whose sizes differ by at
    most one; when a gender does not divide evenly, its larger chunks go to the folds after the
    previous gender's larger chunks, so total fold sizes also stay within one of each other.

    Args:
        speaker_to_gender: speaker id -> gender label (any strings, e.g. "male"/"female").
        n_folds: number of folds, at least 2 and at most the number of speakers.
        seed: None keeps speakers in natural sorted order, so the folds are fixed and documented
            (RAVDESS: fold k = actors 4k+1..4k+4). An int shuffles speakers within each gender first.

    Returns:
        `n_folds` lists of speaker ids, each sorted; every speaker is in exactly one fold.

    Raises:
        UsageError: n_folds < 2 or more folds than speakers.
    """
    if n_folds < 2:
        raise UsageError(f"n_folds must be at least 2 (one to train on, one to evaluate), got {n_folds}")
    if n_folds > len(speaker_to_gender):
        n = len(speaker_to_gender)
        fewer = f"fewer folds (--n_folds {n}), " if n >= 2 else ""
        raise UsageError(
            f"--n_folds {n_folds} needs at least {n_folds} speakers and the corpus has {n} "
            f"({sample_text(sorted(speaker_to_gender, key=_natural_key), 5)}): use {fewer}your own split "
            "(--train_manifest and --validation_manifest), or no speaker column for a stratified split (speakers "
            "may then leak)"
        )
    by_gender: dict[str, list[str]] = defaultdict(list)
    for speaker, gender in speaker_to_gender.items():
        by_gender[str(gender)].append(speaker)
    rng = random.Random(seed) if seed is not None else None
    folds: list[list[str]] = [[] for _ in range(n_folds)]
    offset = 0  # where the current gender's leftover speakers start being dealt
    for gender in sorted(by_gender, key=_natural_key):
        speakers = sorted(by_gender[gender], key=_natural_key)
        if rng is not None:
            rng.shuffle(speakers)
        base, extra = divmod(len(speakers), n_folds)
        sizes = [base] * n_folds
        for i in range(extra):
            sizes[(offset + i) % n_folds] += 1
        offset = (offset + extra) % n_folds
        start = 0
        for k, size in enumerate(sizes):
            folds[k].extend(speakers[start : start + size])
            start += size
    return [sorted(fold, key=_natural_key) for fold in folds]


def _check_fold(name: str, index: int, n_folds: int) -> None:
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < n_folds:
        raise ValueError(f"{name}={index!r} is out of range: valid folds are 0..{n_folds - 1}")


def split_by_fold(
    rows: list[dict],
    folds: list[list[str]],
    eval_fold: int,
    test_fold: int | None = None,
    speaker_key: str = "speaker",
) -> dict[str, list[dict]]:
    """Split rows by speaker fold: one fold for validation, optionally one for test, the rest train.

    Args:
        rows: metadata rows, each with a `speaker_key` entry.
        folds: output of `speaker_folds`.
        eval_fold: index of the fold whose speakers form the validation split.
        test_fold: index of a second held-out fold (test split), never used for model selection.
        speaker_key: row key holding the speaker id.

    Returns:
        `{"train": [...], "validation": [...]}` plus `"test"` when `test_fold` is given; rows keep
        their input order.

    Raises:
        UsageError: an empty split (a fold without clips).
        ValueError: a fold index out of range, test_fold == eval_fold, a speaker listed in two folds, or rows whose
            speaker is in no fold (the callers' checks come first: these are bugs, not mistakes).
    """
    n_folds = len(folds)
    _check_fold("eval_fold", eval_fold, n_folds)
    if test_fold is not None:
        _check_fold("test_fold", test_fold, n_folds)
        if test_fold == eval_fold:
            raise ValueError(f"test_fold and eval_fold must differ, both are {eval_fold}")
    fold_of: dict[str, int] = {}
    for k, fold in enumerate(folds):
        for speaker in fold:
            if speaker in fold_of and fold_of[speaker] != k:
                raise ValueError(f"Speaker {speaker!r} is in folds {fold_of[speaker]} and {k}")
            fold_of[speaker] = k
    # An unknown speaker would otherwise fall silently into train, e.g. "Actor_1" vs "Actor_01".
    unknown = sorted({row[speaker_key] for row in rows if row[speaker_key] not in fold_of}, key=_natural_key)
    if unknown:
        shown = ", ".join(map(str, unknown[:10])) + (" ..." if len(unknown) > 10 else "")
        raise ValueError(f"Rows from {len(unknown)} speaker(s) in no fold: {shown}")
    names = {eval_fold: "validation"}
    if test_fold is not None:
        names[test_fold] = "test"
    splits: dict[str, list[dict]] = {"train": [], "validation": []}
    if test_fold is not None:
        splits["test"] = []
    for row in rows:
        splits[names.get(fold_of[row[speaker_key]], "train")].append(row)
    for name, split in splits.items():
        if not split:
            raise UsageError(
                f"The {name} split is empty (eval_fold={eval_fold}, test_fold={test_fold}, {len(rows)} rows)"
            )
    assert_speaker_independent(splits, speaker_key=speaker_key)
    return splits


def describe_split(splits: dict[str, list[dict]], speaker_key: str = "speaker") -> str:
    """One line per split with its clip count and speakers, for the training log.

    Args:
        splits: split name -> rows.
        speaker_key: row key holding the speaker id.

    Returns:
        e.g. "validation: 240 clips, 4 speakers (Actor_01, Actor_02, Actor_03, Actor_04)".
    """
    lines = []
    for name, rows in splits.items():
        speakers = sorted({row[speaker_key] for row in rows}, key=_natural_key)
        lines.append(f"{name}: {len(rows)} clips, {len(speakers)} speakers ({', '.join(map(str, speakers))})")
    return "\n".join(lines)


def assert_speaker_independent(splits: dict[str, list[dict]], speaker_key: str = "speaker") -> None:
    """Raise if any speaker has clips in more than one split.

    Args:
        splits: split name -> rows.
        speaker_key: row key holding the speaker id.

    Raises:
        ValueError: naming each shared speaker and the splits it appears in.
    """
    where: dict[str, set[str]] = defaultdict(set)
    for name, rows in splits.items():
        for row in rows:
            where[row[speaker_key]].add(name)
    shared = {speaker: names for speaker, names in where.items() if len(names) > 1}
    if shared:
        ordered = sorted(shared.items(), key=lambda kv: _natural_key(kv[0]))
        detail = "; ".join(f"{speaker} in {', '.join(sorted(names))}" for speaker, names in ordered)
        raise ValueError(
            f"Splits are not speaker-independent: {len(shared)} speaker(s) in more than one split: {detail}"
        )


def stratified_split(
    rows: list[dict], eval_fraction: float = 0.2, seed: int = 0, label_key: str = "label"
) -> dict[str, list[dict]]:
    """Random split keeping class proportions: the fallback when rows have no speakers.

    Clips of one speaker end up on both sides, so the evaluation is not speaker-independent; use
    `speaker_folds` / `split_by_fold` whenever a speaker column exists.

    Args:
        rows: metadata rows.
        eval_fraction: fraction of rows in the validation split, in (0, 1).
        seed: random seed (same seed, same split).
        label_key: the row key holding the label.

    Returns:
        `{"train": rows, "validation": rows}`, each in the input order.

    Raises:
        UsageError: eval_fraction outside (0, 1), or a class too small to appear on both sides.
    """
    from sklearn.model_selection import train_test_split

    if not 0 < eval_fraction < 1:
        raise UsageError(f"eval_fraction must be between 0 and 1, got {eval_fraction}")
    labels = [row[label_key] for row in rows]
    small = sorted(label for label, n in Counter(labels).items() if n < 2)
    if small:
        raise UsageError(f"Classes with fewer than 2 clips cannot be split with stratification: {sample_text(small)}")
    logger.warning(
        "Random stratified split (%.0f%% validation, seed %d) without speaker information. %s",
        100 * eval_fraction, seed, SPEAKER_LEAK_WARNING,
    )
    try:
        train_idx, eval_idx = train_test_split(
            list(range(len(rows))), test_size=eval_fraction, random_state=seed, stratify=labels
        )
    except ValueError as err:
        raise UsageError(
            f"Cannot split {len(rows)} clips with stratification at eval_fraction={eval_fraction}: {err}"
        ) from err
    return {"train": [rows[i] for i in sorted(train_idx)], "validation": [rows[i] for i in sorted(eval_idx)]}
