"""Evaluate a trained SER model on its held-out speakers: metrics, per-file predictions and error analysis.

Usage:
    python recipes/evaluate_model.py --model outputs/demo [--split validation|test|all] [--output_dir DIR]
    python recipes/evaluate_model.py --model outputs/cremad --data_dir /other/copy/of/CREMA-D [--field value ...]

The data (corpus, data_dir, folds, ...) is the run's own, from MODEL/data_args.json (written by finetune.py);
--config and any DataArguments field on the command line change it; speakers the model was trained on are refused
unless --allow_seen_speakers (then every output says so). Writes to OUTPUT_DIR (default
MODEL/evaluation): ser_results.json, predictions_<split>.csv (path, speaker, true, predicted, confidence),
error_analysis_<split>.json (most confused pairs, UA per speaker, the most confidently wrong files), the
confusion matrices and reliability_diagram_<split>.png (its ECE is in ser_results.json); prints the scores and the
most confused pairs. A `--task multitask` model's intensity head is scored too, and an emotion x intensity model
(CREMA-D --labels 21, RAVDESS --labels 15) is also scored on its labels' emotions.
"""

import dataclasses
import sys

from ser_hf.commands.options import CommandParser, check_field_options
from ser_hf.console import command


def build_parser(prog=None):
    """The command's options (also read by the docs' flag check)."""
    parser = CommandParser(prog=prog, description=__doc__.splitlines()[0],
                           epilog="Any other --field value sets a DataArguments field (--data_dir, --fold, ...).")
    parser.add_argument("--model", required=True, help="a finetune.py output dir (safetensors weights)")
    parser.add_argument("--config", help="recipe YAML whose data fields replace the run's own")
    parser.add_argument("--split", choices=("validation", "test", "all"), default="all",
                        help="which held-out split(s) to evaluate (all: validation and, if the run had one, test)")
    parser.add_argument("--output_dir", help="where the results go (without it: MODEL/evaluation)")
    parser.add_argument("--batch_size", type=int, default=16, help="evaluation batch size")
    parser.add_argument("--allow_seen_speakers", action="store_true",
                        help="evaluate on speakers the model was trained on (refused otherwise); every output then "
                        "says so, since such scores measure speaker recognition as much as emotion")
    return parser


@command()
def main(argv=None, prog=None):
    parser = build_parser(prog)
    args, overrides = parser.parse_known_args(sys.argv[1:] if argv is None else list(argv))
    from ser_hf.config import DataArguments  # parsed: now the data fields (and torch)

    check_field_options(overrides, [f.name for f in dataclasses.fields(DataArguments)], parser)
    from ser_hf.experiments.evaluate_model import evaluate_model, saved_run_data_args

    data_args = saved_run_data_args(args.model, args.config, overrides)
    evaluate_model(args.model, data_args, split=args.split, output_dir=args.output_dir, batch_size=args.batch_size,
                   allow_seen_speakers=args.allow_seen_speakers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
