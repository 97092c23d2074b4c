"""EmoBox's published cross-validation folds, written down as data, so that a ser_hf number can stand beside
EmoBox's table (Ma et al., "EmoBox: Multilingual Multi-corpus Speech Emotion Recognition Toolkit and Benchmark",
Interspeech 2024; https://github.com/emo-box/EmoBox).

EmoBox ships, for each corpus, `data/<corpus>/fold_<n>/<corpus>_{train,test}_fold_<n>.jsonl` (one utterance a line)
and scores a model on each fold's test file after training on the same fold's train file. The folds were drawn
once by `write_folds` in `EmoBox/utils/preprocess_utils.py` (a corpus with more than 6 speakers and the same
emotion counts for every speaker: speakers shuffled without a seed and dealt round-robin into speakers // 4 folds),
so they cannot be recomputed from its code: the speakers below were read from the published test files.

RAVDESS (speech, 24 actors x 60 clips): 6 folds of 4 actors, every actor in exactly one test file; each test file
holds 240 clips. The folds are not gender-balanced (fold_2 is four actresses), unlike ser_hf's own folds.
Read from emo-box/EmoBox, `data/ravdess/fold_<n>/ravdess_test_fold_<n>.jsonl`, at the commits in `RAVDESS_SOURCE`.

IEMOCAP: EmoBox's 5 folds hold out one session each (fold_k tests on Session k), ser_hf's own IEMOCAP folds.

CREMA-D (and EmoDB) have no EmoBox folds in this sense: `data/cremad/fold_1` (the only fold) is a single random 25 % of the
files, stratified by emotion (`write_folds`'s fallback when the speakers' emotion counts are not all equal), with
actors on both sides (e.g. actor 1004: 1004_TSI_ANG_XX in test, 1004_DFA_ANG_XX in train). That is a list of about
1,860 file names drawn by `random.sample` in the order `os.walk` happened to give, not a compact rule, and not
speaker-independent; `--fold_scheme emobox` refuses it rather than copy it, and `--corpus emobox` reads EmoBox's own
files for any corpus (`ser_hf.corpora.emobox_data`), saying when a fold is not speaker-independent.
"""

from __future__ import annotations

from types import MappingProxyType

from ser_hf.errors import UsageError

EMOBOX_REPOSITORY = "https://github.com/emo-box/EmoBox"

# ser_hf fold k is EmoBox's fold_<k+1>; each entry: (the test file read, the commit it was read at).
RAVDESS_SOURCE = (
    ("data/ravdess/fold_1/ravdess_test_fold_1.jsonl", "bb22000bd04c9c74efc0b07b6d8664b406cbadea"),
    ("data/ravdess/fold_2/ravdess_test_fold_2.jsonl", "fdc57b07574ee03ac9e6e952d51ce0df374e0303"),
    ("data/ravdess/fold_3/ravdess_test_fold_3.jsonl", "fdc57b07574ee03ac9e6e952d51ce0df374e0303"),
    ("data/ravdess/fold_4/ravdess_test_fold_4.jsonl", "fdc57b07574ee03ac9e6e952d51ce0df374e0303"),
    ("data/ravdess/fold_5/ravdess_test_fold_5.jsonl", "bb22000bd04c9c74efc0b07b6d8664b406cbadea"),
    ("data/ravdess/fold_6/ravdess_test_fold_6.jsonl", "fdc57b07574ee03ac9e6e952d51ce0df374e0303"),
)

# The actors of each RAVDESS test file (the `Actor_XX` folder of every line's "wav" path), fold_1 first.
_RAVDESS_TEST_ACTORS = ((1, 11, 20, 21), (4, 10, 12, 14), (8, 9, 19, 23), (3, 5, 7, 24), (2, 15, 16, 18),
                        (6, 13, 17, 22))

# IEMOCAP: EmoBox's fold_<k> tests on session k (data/iemocap/fold_<k>/iemocap_test_fold_<k>.jsonl: 1085 / 1023 /
# 1151 / 1031 / 1241 utterances), the same leave-one-session-out folds as ser_hf's own, in its speaker ids.
_IEMOCAP_SESSIONS = tuple((f"Ses0{k}F", f"Ses0{k}M") for k in range(1, 6))

# --corpus name -> the test speakers of each EmoBox fold, in ser_hf's speaker ids.
EMOBOX_FOLDS = MappingProxyType({
    "ravdess": tuple(tuple(f"Actor_{actor:02d}" for actor in fold) for fold in _RAVDESS_TEST_ACTORS),
    "iemocap": _IEMOCAP_SESSIONS,
})

# Corpora we load for which EmoBox publishes a split that ser_hf does not take, and why (one line each).
_REFUSED = MappingProxyType({
    "emodb": "EmoBox's EmoDB folds (data/emodb/fold_1..5) are random splits of the files with all 10 speakers in "
             "every test file (e.g. fold_1 tests on speakers 03, 08, ..., 16 and trains on the same): not speaker "
             "folds; use the default --fold_scheme ser_hf (5 folds of 2 speakers), or run EmoBox's own files, NOT "
             "speaker-independent, with bash run.sh emobox --emobox_dir EmoBox/data/emodb",
    "cremad": "EmoBox's CREMA-D split (data/cremad/fold_1, its only fold) is one random 25 % of the files, "
              "stratified by emotion, with the same actors in train and test: not speaker folds but a list of "
              "~1,860 files; use the default --fold_scheme ser_hf, or run EmoBox's own file, NOT speaker-independent, "
              "with bash run.sh emobox --emobox_dir EmoBox/data/cremad",
})


def emobox_folds(corpus: str) -> list[list[str]]:
    """The test speakers of each of EmoBox's folds of a corpus (source: see the module docstring).

    Args:
        corpus: a `--corpus` name, e.g. "ravdess".

    Returns:
        One list of speaker ids per fold, ser_hf fold k = EmoBox's fold_<k+1>; every speaker is in exactly one fold.
        RAVDESS: `[["Actor_01", "Actor_11", "Actor_20", "Actor_21"], ["Actor_04", ...], ...]` (6 folds).

    Raises:
        UsageError: EmoBox has no folds for the corpus that ser_hf can use; the message says why and names the
            corpora that have them.
    """
    if corpus in EMOBOX_FOLDS:
        return [list(fold) for fold in EMOBOX_FOLDS[corpus]]
    why = _REFUSED.get(corpus, f"EmoBox publishes no folds for --corpus {corpus}")
    raise UsageError(f"{why}; EmoBox folds are available for: {', '.join(EMOBOX_FOLDS)}")


def emobox_fold_name(fold: int) -> str:
    """EmoBox's own name of ser_hf fold `fold`: 0 -> "fold_1" (its folders count from 1)."""
    return f"fold_{fold + 1}"
