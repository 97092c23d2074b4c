"""The corpora a recipe can train on, one `CorpusSpec` each: what the model card says about the corpus, where its
files go by default, which label sets it has, and how to load it.

    spec = get_corpus("cremad")
    spec.label_set_names, spec.default_label_set      # ("21", "6"), "21"
    rows, label_names = spec.load(data_args)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ser_hf.corpora.cremad import (
    CREMAD_DEFAULT_LABEL_SET,
    CREMAD_LABEL_SETS,
    CREMAD_LICENSE,
    cremad_labels,
    load_cremad,
)
from ser_hf.corpora.emobox_data import label_names as emobox_label_names
from ser_hf.corpora.emobox_data import load_emobox, load_emobox_fold
from ser_hf.corpora.emodb import EMODB_LABELS, EMODB_LICENSE, prepare_emodb
from ser_hf.corpora.iemocap import (
    IEMOCAP_DIMENSION_RANGE,
    IEMOCAP_LABELS,
    IEMOCAP_LICENSE,
    SESSIONS,
    load_iemocap,
    session_folds,
)
from ser_hf.corpora.manifest import hub_dataset_rows, labels_from_rows, load_audiofolder, load_manifest
from ser_hf.corpora.msp_podcast import (
    MSP_PODCAST_DIMENSION_RANGE,
    MSP_PODCAST_LABELS,
    MSP_PODCAST_LICENSE,
    load_msp_podcast,
)
from ser_hf.corpora.ravdess import (
    RAVDESS_DEFAULT_LABEL_SET,
    RAVDESS_LABEL_SETS,
    RAVDESS_LICENSE,
    load_ravdess,
    prepare_ravdess,
)

DEMO_LICENSE = "apache-2.0"  # the generated audio is released, like the code, under Apache-2.0
USER_CORPUS_LICENSE = "other"  # a user's corpus, whose licence we cannot know


@dataclass(frozen=True)
class CorpusSpec:
    """One corpus a recipe can train on.

    Attributes:
        name: the `--corpus` value, e.g. "cremad".
        display_name: the corpus as the model card names it, e.g. "CREMA-D".
        license: the Hub licence id of the data ("other" for a user's corpus).
        default_data_dir: where the corpus is downloaded or generated when no `--data_dir` is given; None where
            the user must say where the data is.
        label_sets: label-set name -> label names in id order, for a corpus with several fixed sets; None when
            the corpus has one fixed set or its labels are read from the data.
        default_label_set: the name in `label_sets` used unless another is asked for; None without label sets.
        emotion_label_set: the name in `label_sets` whose labels are the bare emotions, where the others are
            emotion x intensity ("angry_hi"): those runs are also scored collapsed to these emotions, to stand
            beside an emotion-only or `--task multitask` model. None without label sets.
        limitations: what the model card's Limitations section says about the data; None for a user's corpus,
            about which the card can say nothing specific.
        load: `load(data_args) -> (rows, label_names)`: finds, downloads or generates the corpus and returns its
            metadata rows (dicts with at least "path" and "label", and "speaker"/"gender" where known) and the
            label names in id order.
        dimension_range: (low, high) of the corpus's arousal / valence / dominance ratings, which its rows carry
            as floats under `ser_hf.labels.DIMENSIONS` (IEMOCAP (1, 5), MSP-Podcast (1, 7)); None for a corpus
            without them (a manifest's range is `--dimension_range`).
        folds: `folds(rows) -> [[speaker, ...], ...]`, the corpus's own speaker folds (IEMOCAP: one session each),
            used instead of ser_hf's gender-balanced folds; None for the latter.
        n_folds: how many `folds` gives (a run's --n_folds must say the same); None without own folds.
        held_out: what the held-out fold of a run is by default (`--held_out_split`): "validation" (it selects the
            checkpoint and is reported) or "test" (reported only; the next fold selects).
        official_splits: the rows carry the release's own split (`split`: train, validation, test[, test2,
            test3]), which every run uses instead of folds (MSP-Podcast).
        protocol: one sentence the model card gives on the corpus's evaluation protocol and its published numbers.
        fold_splits: `fold_splits(data_args, fold) -> {"train", "test"[, "validation"]}: rows`, for a corpus whose
            folds are lists of files rather than speakers (EmoBox's jsonl files); None otherwise.
        load_rated: `load` for `--task dimensional`: every clip with ratings, whatever its category (IEMOCAP's
            10039 utterances rather than the 4-class task's 5531); None: `load` gives them.
    """

    name: str
    display_name: str
    license: str
    default_data_dir: str | None
    label_sets: Mapping[str, tuple[str, ...]] | None
    limitations: str | None
    load: Callable[[Any], tuple[list[dict], list[str]]]
    default_label_set: str | None = None
    emotion_label_set: str | None = None
    dimension_range: tuple[float, float] | None = None
    folds: Callable[[list[dict]], list[list[str]]] | None = None
    n_folds: int | None = None
    held_out: str = "validation"
    official_splits: bool = False
    protocol: str | None = None
    fold_splits: Callable[[Any, int], dict] | None = None
    load_rated: Callable[[Any], tuple[list[dict], list[str]]] | None = None

    def __post_init__(self):
        if (self.label_sets is None) != (self.default_label_set is None):
            raise ValueError(f"{self.name}: label_sets and default_label_set go together")
        if self.label_sets is not None:
            if self.default_label_set not in self.label_sets:
                raise ValueError(f"{self.name}: default label set {self.default_label_set!r} is not in label_sets")
            if self.emotion_label_set is not None and self.emotion_label_set not in self.label_sets:
                raise ValueError(f"{self.name}: emotion label set {self.emotion_label_set!r} is not in label_sets")
            # Read-only, so that no caller can change a label set (and with it every later run's label ids).
            object.__setattr__(self, "label_sets", MappingProxyType(dict(self.label_sets)))

    @property
    def label_set_names(self) -> tuple[str, ...]:
        """The names of this corpus's label sets, in definition order; () when it has none."""
        return tuple(self.label_sets or ())

    def resolve_label_set(self, label_set: int | str | None = None) -> str:
        """The name of a label set of this corpus.

        Args:
            label_set: a name from `label_set_names`, as str or int (21 and "21" are the same set); None for
                the default.

        Returns:
            The label-set name, e.g. "21".

        Raises:
            ValueError: the corpus has no label sets, or not this one (the message lists those it has).
        """
        if self.label_sets is None:
            raise ValueError(f"{self.display_name} has no label sets to choose from")
        if label_set is None:
            return self.default_label_set
        name = None if isinstance(label_set, bool) else str(label_set).strip()
        if name not in self.label_sets:
            raise ValueError(
                f"{self.display_name} has the label sets {', '.join(self.label_sets)} "
                f"(default {self.default_label_set}), not {label_set!r}"
            )
        return name

    def emotions(self, label_set: int | str | None = None) -> tuple[str, ...] | None:
        """The bare emotions that the labels of `label_set` collapse to, when they are emotion x intensity.

        Returns:
            The emotion label set's names, or None when `label_set` is already that set or the corpus has none.
        """
        if self.emotion_label_set is None or self.resolve_label_set(label_set) == self.emotion_label_set:
            return None
        return self.label_sets[self.emotion_label_set]


def _with_ravdess_labels(rows: list[dict], label_set) -> tuple[list[dict], list[str]]:
    """RAVDESS-layout rows labelled from the set `label_set` ("8": "happy", "15": "happy_strong")."""
    key = str(label_set or RAVDESS_DEFAULT_LABEL_SET)
    label = (lambda row: row["emotion"]) if key == "8" else (lambda row: f"{row['emotion']}_{row['intensity']}")
    return [{**row, "label": label(row)} for row in rows], list(RAVDESS_LABEL_SETS[key])


def _load_ravdess(data_args) -> tuple[list[dict], list[str]]:
    rows = prepare_ravdess(data_args.data_dir, download=data_args.download)
    return _with_ravdess_labels(rows, data_args.labels)


def _load_demo(data_args) -> tuple[list[dict], list[str]]:
    # Imported on use: the generator pulls in numpy, soundfile and soxr, which no other corpus needs.
    from ser_hf.corpora.demo import synthesize_demo_corpus

    synthesize_demo_corpus(data_args.data_dir, seed=data_args.demo_seed)
    return _with_ravdess_labels(load_ravdess(data_args.data_dir), data_args.labels)


def _load_cremad(data_args) -> tuple[list[dict], list[str]]:
    labels = data_args.labels or CREMAD_DEFAULT_LABEL_SET
    return load_cremad(data_args.data_dir, labels=labels), list(cremad_labels(labels))


def _load_manifest(data_args) -> tuple[list[dict], list[str]]:
    rows = load_manifest(data_args.manifest, **manifest_columns(data_args))
    return rows, labels_from_rows(rows)


def manifest_columns(data_args) -> dict:
    """The column names a manifest's rows are read from (--path_column, --label_column, --speaker_column)."""
    return {"path_column": data_args.path_column, "label_column": data_args.label_column,
            "speaker_column": data_args.speaker_column or "speaker"}


def _load_audiofolder(data_args) -> tuple[list[dict], list[str]]:
    rows = load_audiofolder(data_args.data_dir)
    return rows, labels_from_rows(rows)


def _load_hub(data_args) -> tuple[list[dict], list[str]]:
    extra = {"config_name": data_args.dataset_config_name} if data_args.dataset_config_name else {}
    return hub_dataset_rows(
        data_args.dataset_name, Path(data_args.data_dir) / "hub_audio", split=data_args.dataset_split,
        audio_column=data_args.audio_column, label_column=data_args.label_column,
        speaker_column=data_args.speaker_column, **extra,
    )


def _load_iemocap(data_args) -> tuple[list[dict], list[str]]:
    return load_iemocap(data_args.data_dir), list(IEMOCAP_LABELS)


def _load_msp_podcast(data_args) -> tuple[list[dict], list[str]]:
    return load_msp_podcast(data_args.data_dir), list(MSP_PODCAST_LABELS)


def _load_iemocap_rated(data_args) -> tuple[list[dict], list[str]]:
    return load_iemocap(data_args.data_dir, every_rated=True), list(IEMOCAP_LABELS)


def _load_msp_podcast_rated(data_args) -> tuple[list[dict], list[str]]:
    return load_msp_podcast(data_args.data_dir, every_rated=True), list(MSP_PODCAST_LABELS)


def _load_emodb(data_args) -> tuple[list[dict], list[str]]:
    return prepare_emodb(data_args.data_dir, download=data_args.download), list(EMODB_LABELS)


def _load_emobox(data_args) -> tuple[list[dict], list[str]]:
    return load_emobox(data_args.emobox_dir, data_args.data_dir), emobox_label_names(data_args.emobox_dir)


def _emobox_fold(data_args, fold) -> dict:
    return load_emobox_fold(data_args.emobox_dir, data_args.data_dir, fold)


_ACTED_SPEECH = (
    "Emotions acted on fixed sentences are not spontaneous emotional speech: how the model does on natural "
    "conversation, on other languages and accents, or under other recording conditions is not measured here."
)

_SPECS = (
    CorpusSpec(
        name="ravdess",
        display_name="RAVDESS",
        license=RAVDESS_LICENSE,
        default_data_dir="data/ravdess",
        label_sets=RAVDESS_LABEL_SETS,
        default_label_set=RAVDESS_DEFAULT_LABEL_SET,
        emotion_label_set="8",
        limitations=(
            "Trained and evaluated on RAVDESS speech: 24 professional actors (12 female, 12 male) speaking North "
            "American English, each saying the same two sentences (\"Kids are talking by the door\", \"Dogs are "
            "sitting by the door\") in 8 acted emotions, at normal and strong intensity (neutral at normal "
            "only). " + _ACTED_SPEECH
        ),
        load=_load_ravdess,
    ),
    CorpusSpec(
        name="demo",
        display_name="ser_hf synthetic demo corpus (espeak-ng, RAVDESS layout)",
        license=DEMO_LICENSE,
        default_data_dir="data/demo",
        label_sets=RAVDESS_LABEL_SETS,
        default_label_set=RAVDESS_DEFAULT_LABEL_SET,
        emotion_label_set="8",
        limitations=(
            "Trained and evaluated on a synthetic demo corpus: 24 espeak-ng formant-synthesiser voices saying "
            "two fixed English sentences, with the 8 RAVDESS emotions rendered as prosody settings (speaking "
            "rate, pitch level and range, loudness, pauses) after Murray & Arnott (1993). There are no human "
            "recordings. It demonstrates that the pipeline trains and evaluates correctly; its scores say "
            "nothing about emotion recognition on human speech, and the model is of no use on real audio."
        ),
        load=_load_demo,
    ),
    CorpusSpec(
        name="cremad",
        display_name="CREMA-D",
        license=CREMAD_LICENSE,
        default_data_dir=None,
        label_sets=CREMAD_LABEL_SETS,
        default_label_set=CREMAD_DEFAULT_LABEL_SET,
        emotion_label_set="6",
        limitations=(
            "Trained and evaluated on CREMA-D: 91 actors (48 male, 43 female, aged 20-74, of several races and "
            "ethnicities) speaking 12 fixed English sentences in 6 acted emotions. Emotion levels (low, medium, "
            "high) were recorded for one sentence only (\"It's eleven o'clock\"), so in the 21-label task the "
            "level is confounded with the words, and 15 of the 21 classes have at most 91 clips each. "
            + _ACTED_SPEECH
        ),
        load=_load_cremad,
    ),
    CorpusSpec(
        name="iemocap",
        display_name="IEMOCAP",
        license=IEMOCAP_LICENSE,
        default_data_dir=None,
        label_sets=None,
        limitations=(
            "Trained and evaluated on IEMOCAP: 10 actors (5 female, 5 male) of US English in 5 sessions of dyadic "
            "conversation, scripted and improvised, in a studio. The standard 4-class task (neutral, angry, sad, "
            "happy with excited merged into happy) keeps 5531 of the ~10k utterances: those whose annotators agreed "
            "on one of these classes; frustration, surprise, fear, disgust and the utterances without agreement "
            "are left out, so the task is easier than the conversations it comes from (--task dimensional keeps "
            "all 10039 rated utterances). " + _ACTED_SPEECH
        ),
        load=_load_iemocap,
        load_rated=_load_iemocap_rated,
        dimension_range=IEMOCAP_DIMENSION_RANGE,
        folds=session_folds,
        n_folds=SESSIONS,
        held_out="test",
        protocol=(
            "Leave one session out (the SUPERB / s3prl / EmoBox protocol): each fold holds out one session's two "
            "actors as the test split, which takes no part in training or selection; the next session's actors "
            "are the validation split that selects the checkpoint, and the other three sessions train."
        ),
    ),
    CorpusSpec(
        name="msp_podcast",
        display_name="MSP-Podcast",
        license=MSP_PODCAST_LICENSE,
        default_data_dir=None,
        label_sets=None,
        limitations=(
            "Trained and evaluated on MSP-Podcast: segments of English podcasts, natural (not acted) speech labelled "
            "by crowd-sourced listeners, with many more neutral than emotional segments; O (other) and X (no "
            "agreement) segments are left out (kept by --task dimensional: they have ratings). Speakers marked Unknown may appear in more than one split."
        ),
        load=_load_msp_podcast,
        load_rated=_load_msp_podcast_rated,
        dimension_range=MSP_PODCAST_DIMENSION_RANGE,
        official_splits=True,
        protocol=(
            "The release's own splits: Train trains, Development selects the checkpoint, Test1 (and Test2 / Test3 "
            "where the release has them) are reported, each on its own."
        ),
    ),
    CorpusSpec(
        name="emodb",
        display_name="EmoDB (Berlin Database of Emotional Speech)",
        license=EMODB_LICENSE,
        default_data_dir="data/emodb",
        label_sets=None,
        limitations=(
            "Trained and evaluated on EmoDB: 10 German actors (5 female, 5 male) saying 10 fixed everyday sentences "
            "in 7 acted emotions, in an anechoic chamber; 535 utterances that listeners recognised well. "
            + _ACTED_SPEECH
        ),
        load=_load_emodb,
    ),
    CorpusSpec(
        name="emobox",
        display_name="EmoBox corpus (EmoBox's own fold files)",
        license=USER_CORPUS_LICENSE,
        default_data_dir=None,
        label_sets=None,
        limitations=None,
        load=_load_emobox,
        held_out="test",
        fold_splits=_emobox_fold,
        protocol=("EmoBox's own folds (github.com/emo-box/EmoBox): each fold trains on its train file and is scored "
                  "on its test file, which takes no part in selection."),
    ),
    CorpusSpec(
        name="manifest",
        display_name="user corpus (manifest)",
        license=USER_CORPUS_LICENSE,
        default_data_dir=None,
        label_sets=None,
        limitations=None,
        load=_load_manifest,
    ),
    CorpusSpec(
        name="audiofolder",
        display_name="user corpus (audiofolder)",
        license=USER_CORPUS_LICENSE,
        default_data_dir=None,
        label_sets=None,
        limitations=None,
        load=_load_audiofolder,
    ),
    CorpusSpec(
        name="hub",
        display_name="Hub dataset",
        license=USER_CORPUS_LICENSE,
        default_data_dir=None,
        label_sets=None,
        limitations=None,
        load=_load_hub,
    ),
)

# name -> spec, in the order the help text lists the corpora.
CORPORA: Mapping[str, CorpusSpec] = MappingProxyType({spec.name: spec for spec in _SPECS})


def corpus_names() -> tuple[str, ...]:
    """The `--corpus` values.

    Returns:
        ("ravdess", "demo", "cremad", "manifest", "audiofolder", "hub").
    """
    return tuple(CORPORA)


def get_corpus(name: str) -> CorpusSpec:
    """The spec of a corpus.

    Args:
        name: a `--corpus` value.

    Returns:
        Its `CorpusSpec`.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    try:
        return CORPORA[name]
    except KeyError:
        raise ValueError(f"Unknown corpus {name!r}; the corpora are {', '.join(CORPORA)}") from None

