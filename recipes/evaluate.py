"""Evaluate a trained SER model on its held-out speakers: metrics, per-file predictions and error analysis.

Usage:
    python recipes/evaluate.py --model outputs/demo [--split validation|test|all] [--output_dir DIR]
    python recipes/evaluate.py --model outputs/demo --config recipes/configs/demo.yaml --fold 2 [--field value ...]

The data (corpus, data_dir, folds, ...) is the run's own, from MODEL/data_args.json (written by finetune.py);
--config and any DataArguments field on the command line change it. Writes to OUTPUT_DIR (default
MODEL/evaluation): ser_results.json, predictions_<split>.csv (path, speaker, true, predicted, confidence),
error_analysis_<split>.json (most confused pairs, UA per speaker, the most confidently wrong files) and the
confusion matrices; prints the scores and the most confused pairs.
"""

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

# Run from a checkout without installing. recipes/ itself comes off the path: this file would shadow the
# `evaluate` library.
_ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(_ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != _ROOT / "recipes"]

import yaml  # noqa: E402
from transformers import HfArgumentParser  # noqa: E402

from ser_hf.config import DataArguments  # noqa: E402
from ser_hf.data import DATA_ARGS_FILE, build_datasets, exclude_bad_audio, prepare_splits  # noqa: E402
from ser_hf.error_analysis import format_error_analysis, write_error_analysis  # noqa: E402
from ser_hf.evaluation import load_trained  # noqa: E402
from ser_hf.plots import plot_confusion_matrix  # noqa: E402
from ser_hf.reporting import RESULTS_FILE, evaluate_split, results_table, write_predictions_csv  # noqa: E402

logger = logging.getLogger("ser_hf")


def _data_args(model_dir, config, overrides):
    """The run's DataArguments, then the config's data fields, then the command line."""
    parser = HfArgumentParser(DataArguments)
    defaults = {}
    saved = Path(model_dir) / DATA_ARGS_FILE
    if saved.is_file():
        defaults.update(json.loads(saved.read_text()))
    elif config is None:
        raise SystemExit(f"{saved} not found (a model trained elsewhere?): pass --config with its corpus and folds")
    if config is not None:
        fields = set(DataArguments.__dataclass_fields__)
        defaults.update({k: v for k, v in (yaml.safe_load(Path(config).read_text()) or {}).items() if k in fields})
    parser.set_defaults(**defaults)
    (data_args,) = parser.parse_args_into_dataclasses(args=overrides)
    return data_args


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False,
                                     epilog="Any other --field value sets a DataArguments field (--data_dir, --fold, ...).")
    parser.add_argument("--model", required=True, help="a finetune.py output dir (safetensors weights)")
    parser.add_argument("--config", help="recipe YAML whose data fields replace the run's own")
    parser.add_argument("--split", choices=("validation", "test", "all"), default="all",
                        help="which held-out split(s) to evaluate (all: validation and, if the run had one, test)")
    parser.add_argument("--output_dir", help="where the results go (default: MODEL/evaluation)")
    parser.add_argument("--batch_size", type=int, default=16, help="evaluation batch size")
    args, overrides = parser.parse_known_args(sys.argv[1:] if argv is None else list(argv))
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    model_dir = Path(args.model)
    output_dir = Path(args.output_dir or model_dir / "evaluation")
    output_dir.mkdir(parents=True, exist_ok=True)

    data_args = _data_args(model_dir, args.config, overrides)
    splits, _, (split_name, _) = prepare_splits(data_args)
    splits, _ = exclude_bad_audio(splits, data_args, output_dir)
    wanted = [s for s in splits if s != "train" and args.split in ("all", s)]
    if not wanted:
        raise SystemExit(f"the data has no {args.split} split (held out: {[s for s in splits if s != 'train']})")

    with tempfile.TemporaryDirectory() as scratch:
        trainer, feature_extractor, label_names = load_trained(model_dir, scratch, args.batch_size)
        data = build_datasets({s: splits[s] for s in wanted}, trainer.model.config.label2id, feature_extractor,
                              data_args)
        results = {}
        for split in wanted:
            results[split], rows = evaluate_split(trainer, data[split], label_names, split)
            write_predictions_csv(rows, output_dir / f"predictions_{split}.csv", data_args.data_dir)
            _, analysis = write_error_analysis(rows, label_names, output_dir / f"error_analysis_{split}.json",
                                               data_args.data_dir)
            for normalize, name in ((False, "confusion_matrix"), (True, "confusion_matrix_normalized")):
                plot_confusion_matrix(results[split]["confusion_matrix"], label_names,
                                      output_dir / f"{name}_{split}.png", normalize=normalize)
            print(format_error_analysis(analysis, split))
    (output_dir / RESULTS_FILE).write_text(json.dumps(results, indent=2))
    print(f"{split_name}\n" + results_table(results, model_dir))
    print(f"wrote {output_dir}")
    return results


if __name__ == "__main__":
    main()
