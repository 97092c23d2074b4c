"""Compare two cross-validations fold by fold and clip by clip: per-fold UA difference, paired tests, bootstrap CI.

Usage:
    ser-hf compare CV_DIR_A CV_DIR_B [--output FILE.json] [--resamples 2000] [--seed 0] [--bootstrap_unit clip]
    python recipes/compare.py outputs/demo_cv outputs/demo_cv_weighted

Both dirs are `ser-hf cv` outputs over the same folds: the same held-out speakers and the same clips per fold
(anything else is refused, naming the first difference). Differences are B - A. Prints the table and writes it
as JSON (default CV_DIR_B/compare_with_<name of A>.json) and markdown beside it.
"""

import sys
from pathlib import Path

from ser_hf.commands.options import CommandParser
from ser_hf.console import command
from ser_hf.errors import UsageError
from ser_hf.evaluation.compare import DEFAULT_RESAMPLES


def build_parser(prog=None):
    """The command's options (also read by the docs' flag check)."""
    parser = CommandParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("cv_a", help="the reference cross-validation's output dir (A)")
    parser.add_argument("cv_b", help="the cross-validation compared with it (B); differences are B - A")
    parser.add_argument("--output", help="JSON file to write (default CV_B/compare_with_<name of A>.json; .md beside)")
    parser.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES, help="paired bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (same seed, same interval)")
    parser.add_argument("--confidence", type=float, default=0.95, help="coverage of the bootstrap interval")
    parser.add_argument("--bootstrap_unit", choices=("clip", "speaker"), default="clip",
                        help="resample clips, or whole speakers (keeps one speaker's clips together: wider, honest)")
    return parser


@command()
def main(argv=None, prog=None):
    parser = build_parser(prog)
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    if args.resamples < 1 or not 0 < args.confidence < 1:
        raise UsageError("--resamples must be at least 1 and --confidence between 0 and 1 (e.g. 0.95)")

    from ser_hf.evaluation.compare import compare_runs, load_cv_run
    from ser_hf.reporting.compare_report import comparison_markdown, write_comparison

    a, b = load_cv_run(args.cv_a), load_cv_run(args.cv_b)
    result = compare_runs(a, b, resamples=args.resamples, seed=args.seed, confidence=args.confidence,
                          unit=args.bootstrap_unit)
    output = Path(args.output) if args.output else Path(args.cv_b) / f"compare_with_{Path(args.cv_a).resolve().name}.json"
    write_comparison(result, output)
    print(comparison_markdown(result))
    print(f"wrote {output} and {output.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
