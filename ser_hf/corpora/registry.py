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
from ser_hf.corpora.manifest import hub_dataset_rows, labels_from_rows, load_audiofolder, load_manifest
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

