"""Export a trained emotion model to ONNX (optionally int8), checked against PyTorch.

The recipe is `ser_hf.commands.export` (also `ser-hf export`); run `python recipes/export.py --help` for its options.
"""

import sys

from ser_hf.commands.export import main

if __name__ == "__main__":
    sys.exit(main(prog="recipes/export.py"))
