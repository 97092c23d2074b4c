"""Classify audio files or folders with a trained emotion model.

The recipe is `ser_hf.commands.predict` (also `ser-hf predict`); run `python recipes/predict.py --help` for its options.
"""

import sys

from ser_hf.commands.predict import main

if __name__ == "__main__":
    sys.exit(main(prog="recipes/predict.py"))
