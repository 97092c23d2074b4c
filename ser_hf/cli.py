"""`ser-hf`: one console script for every recipe.

    ser-hf train CONFIG.yaml [--field value ...]     fine-tune one speaker fold      (= recipes/finetune.py)
    ser-hf cv CONFIG.yaml [--folds 0,1] [...]        every speaker fold, one table    (= recipes/crossval.py)
    ser-hf evaluate --model DIR [...]                re-evaluate a trained model      (= recipes/evaluate_model.py)
    ser-hf predict MODEL FILE_OR_DIR ... [...]       classify audio files             (= recipes/predict.py)
    ser-hf baseline CONFIG.yaml [--folds ...]        the MFCC + prosody SVM baseline  (= recipes/baseline_svm.py)
    ser-hf bench [--device cuda] [...]               speed, side by side              (= recipes/benchmark.py)
    ser-hf export MODEL --onnx OUT [--int8]          ONNX (+ int8), parity-checked    (= recipes/export.py)
    ser-hf app MODEL [--export_space DIR]            the demo app, or a HF Space      (= recipes/app.py)
    ser-hf search CONFIG.yaml [--n_trials N ...]     hyperparameter search (Optuna)   (= recipes/search.py)
    ser-hf compare CV_DIR_A CV_DIR_B [...]           two cross-validations, paired    (= recipes/compare.py)
    ser-hf sweep SWEEP.yaml --output_dir OUT [...]   a grid of settings x folds       (= recipes/sweep.py)

`ser-hf COMMAND --help` lists each command's options. Cross-validation starts its folds as
`python -m ser_hf.cli train ...`, so a fold is exactly what a user would run.
"""

import importlib
import sys

# Imported on demand: `ser-hf predict --help` should not wait for the training stack to import.
COMMANDS = {
    "train": "ser_hf.commands.train",
    "cv": "ser_hf.commands.crossval",
    "evaluate": "ser_hf.commands.evaluate",
    "predict": "ser_hf.commands.predict",
    "baseline": "ser_hf.commands.baseline",
    "bench": "ser_hf.commands.benchmark",
    "export": "ser_hf.commands.export",
    "app": "ser_hf.commands.app",
    "search": "ser_hf.commands.search",
    "compare": "ser_hf.commands.compare",
    "sweep": "ser_hf.commands.sweep",
}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(__doc__.strip())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"ser-hf: unknown command {name!r}; choose from {', '.join(COMMANDS)} (ser-hf --help)", file=sys.stderr)
        return 2
    command = importlib.import_module(COMMANDS[name])
    return command.main(rest, prog=f"ser-hf {name}")


if __name__ == "__main__":
    sys.exit(main())
