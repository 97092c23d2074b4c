"""Emotion intensity of a clip, for the intensity head of `--task multitask`.

The corpora record it differently: RAVDESS (and the RAVDESS-shaped demo corpus) in the file name as normal/strong,
CREMA-D as a level LO/MD/HI for one sentence and XX ("unspecified") for the other eleven; a manifest may carry an
`intensity` column. A clip without a known intensity gets None here, and `-100` (`IGNORE_INDEX`) as its intensity
id, which the loss ignores: XX is the absence of a label, not a fourth level to learn.

Neutral clips get None too. Neither corpus varies the intensity of neutral (RAVDESS records it at normal only,
CREMA-D at XX only): a "normal" label there is not a contrast the actor made, and learning it would only teach the
intensity head "neutral => normal", which the emotion head already knows, and inflate the intensity UA.
"""

IGNORE_INDEX = -100  # torch.nn.functional.cross_entropy's default ignore_index

RAVDESS_INTENSITIES = ("normal", "strong")
CREMAD_INTENSITIES = ("low", "medium", "high")
_CREMAD_LEVELS = {"LO": "low", "MD": "medium", "HI": "high"}  # XX: unspecified
# Corpora whose intensity names are fixed by code (ids never depend on which files a run finds).
INTENSITY_LABEL_SETS = {"ravdess": RAVDESS_INTENSITIES, "demo": RAVDESS_INTENSITIES, "cremad": CREMAD_INTENSITIES}
_UNSPECIFIED = {"", "xx", "none", "null", "nan", "unspecified", "unknown"}


def intensity_of(row):
    """The intensity name of one corpus row, or None where it has none (CREMA-D XX, neutral, no column).

    Args:
        row: a metadata row from a corpus loader: RAVDESS/demo rows carry "intensity" (normal/strong), CREMA-D
            rows "level" (LO/MD/HI/XX), manifest rows whatever their "intensity" column holds.

    Returns:
        The intensity name, or None.
    """
    if str(row.get("emotion") or row.get("label") or "").lower() == "neutral":
        return None
    if row.get("level") is not None:  # CREMA-D
        return _CREMAD_LEVELS.get(str(row["level"]).upper())
    value = row.get("intensity")
    if value is None or str(value).strip().lower() in _UNSPECIFIED:
        return None
    return str(value).strip()


def intensity_names(corpus, rows):
    """The intensity label set of a corpus, in id order.

    Args:
        corpus: the corpus name (`DataArguments.corpus`).
        rows: its rows, read for corpora without a fixed set (a manifest's `intensity` column, sorted).

    Returns:
        A tuple of names; empty when no row has an intensity.
    """
    if corpus in INTENSITY_LABEL_SETS:
        return INTENSITY_LABEL_SETS[corpus]
    return tuple(sorted({name for name in map(intensity_of, rows) if name is not None}))


def intensity_id(row, names):
    """The intensity id of a row in `names`, or `IGNORE_INDEX` when it has none (or one outside `names`)."""
    name = intensity_of(row)
    return names.index(name) if name in names else IGNORE_INDEX
