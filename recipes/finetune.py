"""Fine-tune a self-supervised speech encoder for speech emotion recognition, one speaker fold.

The recipe is `ser_hf.commands.train` (also `ser-hf train`); run `python recipes/finetune.py --help` for its options.
"""

import sys

from ser_hf.commands.train import main

if __name__ == "__main__":
    sys.exit(main(prog="recipes/finetune.py"))
