"""A grid of settings (encoders x corpora), each cross-validated over speaker folds, one table per corpus.

    python recipes/sweep.py recipes/sweeps/demo_probe.yaml --output_dir outputs/demo_sweep

The recipe is `ser_hf.commands.sweep` (also `ser-hf sweep`); run `python recipes/sweep.py --help` for its options.
"""

import sys

from ser_hf.commands.sweep import main

if __name__ == "__main__":
    sys.exit(main(prog="recipes/sweep.py"))
