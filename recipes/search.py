"""Bayesian hyperparameter search over speaker folds (Optuna): resumable, the best config as a ready-to-run YAML.

    python recipes/search.py recipes/configs/demo.yaml --n_trials 20 --probe true --test_fold 5

The recipe is `ser_hf.commands.search` (also `ser-hf search`); run `python recipes/search.py --help` for its options.
"""

import sys

from ser_hf.commands.search import main

if __name__ == "__main__":
    sys.exit(main(prog="recipes/search.py"))
