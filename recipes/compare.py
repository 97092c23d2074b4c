"""Compare two cross-validations on the same folds: per-fold UA difference, paired tests and a bootstrap CI.

    python recipes/compare.py CV_DIR_A CV_DIR_B [--output FILE.json]

The recipe is `ser_hf.commands.compare` (also `ser-hf compare`); run `python recipes/compare.py --help` for its options.
"""

import sys

from ser_hf.commands.compare import main

if __name__ == "__main__":
    sys.exit(main(prog="recipes/compare.py"))
