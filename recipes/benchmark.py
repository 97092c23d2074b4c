"""Measure data preparation, training throughput and inference of the recipes, side by side in one process.

The recipe is `ser_hf.commands.benchmark` (also `ser-hf bench`, `bash run.sh bench`); run
`python recipes/benchmark.py --help` for its options.
"""

import sys

from ser_hf.commands.benchmark import main

if __name__ == "__main__":
    sys.exit(main(prog="recipes/benchmark.py"))
