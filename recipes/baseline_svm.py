"""Classical baseline: MFCC + prosody statistics and an SVM, on the recipe's speaker folds.

The recipe is `ser_hf.commands.baseline` (also `ser-hf baseline`); run `python recipes/baseline_svm.py --help` for its options.
"""

import sys

from ser_hf.commands.baseline import main

if __name__ == "__main__":
    sys.exit(main(prog="recipes/baseline_svm.py"))
