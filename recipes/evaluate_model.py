"""Evaluate a trained SER model on its held-out speakers.

The recipe is `ser_hf.commands.evaluate` (also `ser-hf evaluate`); run `python recipes/evaluate_model.py --help` for its options.
"""

import sys

from ser_hf.commands.evaluate import main

if __name__ == "__main__":
    sys.exit(main(prog="recipes/evaluate_model.py"))
