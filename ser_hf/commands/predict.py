"""Classify audio files or folders with a trained emotion model and print (or save) the top-k emotions.

Usage:
    python recipes/predict.py MODEL_DIR_OR_HUB_ID FILE_OR_FOLDER [...] [--top_k 3] [--output preds.csv|preds.json]
        [--chunk_seconds 10 --chunk_overlap 5] [--batch_size 16]

Every file gets a row: a prediction, or an error saying why (unreadable, too short, NaN/Inf audio, ...).
Files longer than --chunk_seconds are classified in overlapping windows and the probabilities averaged.
Exit status 0 when at least one file was classified, 1 when none was.
"""

import argparse
import logging
import sys
import time

from ser_hf.commands import one_line_errors
from ser_hf.evaluation.inference import (
    check_chunking, classify_files, collect_audio_files, format_table, load_classifier, write_predictions,
)


@one_line_errors
def main(argv=None, prog=None):
    """Classify the files and folders on the command line (see the module docstring).

    Args:
        argv: the arguments (default: sys.argv[1:]).
        prog: the program name in usage messages.

    Returns:
        0 when every file was classified, 1 when any was not (each has an ERROR row, and every other file its
        prediction), so a script notices.
    """
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("model", help="output dir of a training run, or a Hub model id")
    parser.add_argument("inputs", nargs="+", help="audio files and/or folders (searched recursively)")
    parser.add_argument("--top_k", type=int, default=3, help="how many emotions to show per file")
    parser.add_argument("--output", help="also write the predictions to this .csv or .json file")
    parser.add_argument("--device", default=None, help="e.g. cpu, cuda:0 (default: the pipeline's choice)")
    parser.add_argument("--chunk_seconds", type=float, default=10.0,
                        help="files longer than this are classified in windows of this length")
    parser.add_argument("--chunk_overlap", type=float, default=5.0,
                        help="seconds shared by consecutive windows (must be below --chunk_seconds)")
    parser.add_argument("--batch_size", type=int, default=16,
                        help="clips per forward pass (1: the plain pipeline, file by file); the labels are the same")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    if args.top_k < 1 or args.batch_size < 1:
        parser.error("--top_k and --batch_size must be at least 1")
    try:
        check_chunking(args.chunk_seconds, args.chunk_overlap)
    except ValueError as err:
        parser.error(f"--chunk_seconds/--chunk_overlap: {err}")

    files = collect_audio_files(args.inputs)
    if not files:
        parser.error(f"no audio files found in {args.inputs}")
    classifier = load_classifier(args.model, args.device)
    start = time.perf_counter()
    rows = classify_files(classifier, files, top_k=args.top_k, chunk_seconds=args.chunk_seconds,
                          chunk_overlap=args.chunk_overlap, batch_size=args.batch_size)
    seconds = time.perf_counter() - start
    print(format_table(rows))
    print(f"{len(rows)} files in {seconds:.1f} s ({len(rows) / max(seconds, 1e-9):.1f} clips/s)", file=sys.stderr)
    if args.output:
        print(f"wrote {write_predictions(rows, args.output)}")
    failed = sum(bool(r["error"]) for r in rows)
    if failed:
        print(f"{failed} of {len(rows)} files could not be classified (see ERROR rows)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
