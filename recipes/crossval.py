"""Speaker-independent k-fold cross-validation: one model per speaker fold, one table.

The recipe is `ser_hf.commands.crossval` (also `ser-hf crossval`); run `python recipes/crossval.py --help` for its options.
"""

import sys

from ser_hf.commands.crossval import main

if __name__ == "__main__":
    sys.exit(main(prog="recipes/crossval.py"))
