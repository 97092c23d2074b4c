"""Dimensional ratings (`--task dimensional`): each clip's arousal, dominance and valence, scaled to [0, 1].

The one place where a corpus's ratings become training targets. Corpus loaders (IEMOCAP 1-5, MSP-Podcast 1-7)
put raw numbers in their rows under `ser_hf.labels.DIMENSIONS`; a manifest passes its `arousal`, `valence` and
`dominance` columns through as text. `dimension_targets` reads either, refuses what is not a rating on the
corpus's scale, and adds `"dimensions": [arousal, dominance, valence]`, each (x - low) / (high - low):

    low, high = dimension_range(data_args)              # the corpus's scale, or --dimension_range, or (0, 1)
    rows = dimension_targets(rows, low, high, "corpus.csv")
"""

import math

from ser_hf.config import parse_dimension_range
from ser_hf.corpora import CORPORA, get_corpus
from ser_hf.errors import UsageError
from ser_hf.labels import DIMENSIONS

# The row key of the scaled targets, in DIMENSIONS order.
TARGET_KEY = "dimensions"
# A rating written as 5.0000000001 by a spreadsheet is still on a 1-5 scale.
_SLACK = 1e-9


def dimension_range(data_args):
    """The scale of a corpus's ratings: its own (IEMOCAP (1, 5)), a manifest's `--dimension_range`, else (0, 1).

    Returns:
        (low, high) as floats.
    """
    own = get_corpus(data_args.corpus).dimension_range
    if own is not None:
        return float(own[0]), float(own[1])
    if data_args.dimension_range is not None:
        return parse_dimension_range(data_args.dimension_range)
    return 0.0, 1.0


def check_dimensional_data(data_args):
    """Refuse `--task dimensional` on a corpus without ratings, in the first second.

    Args:
        data_args: `DataArguments`.

    Raises:
        UsageError: a corpus without arousal / valence / dominance ratings (every corpus but those with a
            `dimension_range` in the registry and manifests), or `--dimension_range` for a corpus that knows its scale.
    """
    spec = get_corpus(data_args.corpus)
    if spec.dimension_range is None and data_args.corpus != "manifest":
        rated = [name for name, other in CORPORA.items() if other.dimension_range is not None]
        raise UsageError(f"--task dimensional needs arousal, valence and dominance ratings, which {spec.display_name} "
                         f"does not have: use {' or '.join(f'--corpus {n}' for n in rated + ['manifest'])} (a "
                         "manifest with arousal, valence and dominance columns), or --task emotion")
    if spec.dimension_range is not None and data_args.dimension_range is not None:
        low, high = spec.dimension_range
        raise UsageError(f"--dimension_range {data_args.dimension_range}: {spec.display_name} rates on "
                         f"{low:g}-{high:g} already; --dimension_range is for a manifest's columns (drop it)")


def dimension_targets(rows, low, high, source, scale_flag=True):
    """Rows with `"dimensions"`: [arousal, dominance, valence] scaled from [low, high] to [0, 1].

    Args:
        rows: corpus or manifest rows holding each dimension under its name (a number, or a manifest's text).
        low, high: the ratings' scale (`dimension_range`).
        source: the corpus or manifest file, for messages.
        scale_flag: the scale comes from `--dimension_range` (a manifest), which a message then offers as the fix;
            False for a corpus with a scale of its own.

    Returns:
        New rows (the originals are not changed), in order.

    Raises:
        UsageError: a dimension missing (no such column, or an empty value), a value that is not a finite number, or
            one outside [low, high]; one line naming the source, the clip, the column, the value and the fix.
    """
    if not rows:
        return []
    for name in DIMENSIONS:
        if not any(name in row for row in rows):
            raise UsageError(f"{source}: no {name!r} column; --task dimensional needs arousal, valence and dominance "
                             f"columns with one rating per clip (on the scale {low:g}-{high:g}"
                             + (", which --dimension_range sets)" if scale_flag else ")"))
    return [{**row, TARGET_KEY: [_scaled(row, name, low, high, source, scale_flag) for name in DIMENSIONS]}
            for row in rows]


def _scaled(row, name, low, high, source, scale_flag):
    raw = row.get(name)
    clip = row.get("path", "?")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise UsageError(f"{source}: clip {clip} has no {name} rating: give every clip a number in the {name!r} "
                         "column (or leave the clip out of the corpus)")
    try:
        value = float(raw.strip() if isinstance(raw, str) else raw)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value):
        raise UsageError(f"{source}: clip {clip} has {name}={raw!r}, which is not a number: write the rating as a "
                         "number, e.g. 3.5")
    if not low - _SLACK <= value <= high + _SLACK:
        fix = ("set --dimension_range LOW,HIGH to the scale your ratings use (e.g. 1,5; without it they must be in "
               "[0, 1])") if scale_flag else "correct the rating, or leave the clip out of the corpus"
        raise UsageError(f"{source}: clip {clip} has {name}={raw!r}, outside the scale {low:g}-{high:g}: {fix}")
    return min(1.0, max(0.0, (value - low) / (high - low)))


def rows_with_targets(rows, data_args, source):
    """`dimension_targets` of rows of the corpus `data_args` names, on its scale (`dimension_range`)."""
    low, high = dimension_range(data_args)
    own_scale = get_corpus(data_args.corpus).dimension_range is not None
    return dimension_targets(rows, low, high, source, scale_flag=not own_scale)


def target_mean(rows):
    """The mean [arousal, dominance, valence] target of rows: the training-mean baseline's constant prediction."""
    if not rows:
        raise ValueError("no rows to average")
    return [sum(row[TARGET_KEY][i] for row in rows) / len(rows) for i in range(len(DIMENSIONS))]


def target_stats_markdown(splits):
    """Mean +- std of each scaled target per split, as a markdown table (the dimensional run's data section).

    Args:
        splits: split name -> rows with `"dimensions"`.

    Returns:
        The table: one row per dimension, one column per split, and the clip counts.
    """
    names = list(splits)
    lines = ["| target (0-1) | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for i, name in enumerate(DIMENSIONS):
        cells = []
        for split in names:
            values = [row[TARGET_KEY][i] for row in splits[split]]
            mean = sum(values) / len(values) if values else math.nan
            std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values)) if values else math.nan
            cells.append(f"{mean:.3f} +- {std:.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("| **clips** | " + " | ".join(str(len(splits[name])) for name in names) + " |")
    return "\n".join(lines)
