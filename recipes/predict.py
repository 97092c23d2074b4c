"""Classify audio files or folders with a trained emotion model and print (or save) the top-k emotions.

Usage:
    python recipes/predict.py MODEL_DIR_OR_HUB_ID FILE_OR_FOLDER [...] [--top_k 3] [--output preds.csv|preds.json]
"""

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from ser_hf.inference import classify_files, collect_audio_files, format_table, load_classifier, write_predictions


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="output dir of a training run, or a Hub model id")
    parser.add_argument("inputs", nargs="+", help="audio files and/or folders (searched recursively)")
    parser.add_argument("--top_k", type=int, default=3, help="how many emotions to show per file")
    parser.add_argument("--output", help="also write the predictions to this .csv or .json file")
    parser.add_argument("--device", default=None, help="e.g. cpu, cuda:0 (default: the pipeline's choice)")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.WARNING)

    files = collect_audio_files(args.inputs)
    if not files:
        parser.error(f"no audio files found in {args.inputs}")
    rows = classify_files(load_classifier(args.model, args.device), files, top_k=args.top_k)
    print(format_table(rows))
    if args.output:
        print(f"wrote {write_predictions(rows, args.output)}")
    return 1 if all(r["error"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
