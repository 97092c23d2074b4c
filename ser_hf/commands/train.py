"""Fine-tune a self-supervised speech encoder for speech emotion recognition, speaker-independently.

Usage:
    python recipes/finetune.py recipes/configs/ravdess.yaml [--data_dir DIR] [--output_dir OUT] [--field value ...]
    accelerate launch recipes/finetune.py recipes/configs/ravdess.yaml --data_dir DIR --output_dir OUT
    ser-hf train recipes/configs/ravdess.yaml [--field value ...]

Every field of ModelArguments, DataArguments and TrainingArguments can be set in the YAML or on the
command line (which wins): see `python recipes/finetune.py --help`. The run itself is
`ser_hf.experiments.training_run.run_training`.
"""

import os
import sys

from ser_hf.console import command
from ser_hf.reporting.command import command_line


@command()
def main(argv=None, prog="recipes/finetune.py"):
    argv = sys.argv[1:] if argv is None else list(argv)
    # The recipe's fields are dataclasses on transformers' TrainingArguments: parsing imports torch, the training
    # stack (datasets, the Trainer, the models) comes after.
    from ser_hf.config import full_help, parse_config, short_help

    if {"-h", "--help"} & set(argv):
        print(short_help(prog))
        return 0
    if "--help_all" in argv:
        print(full_help(prog))
        return 0
    # run.sh and crossval say which command the user typed; read once here, where the run starts.
    shown = command_line(prog, argv, wrapper=os.environ.get("SER_HF_COMMAND"))
    config_path = argv.pop(0) if argv and not argv[0].startswith("-") else None
    parsed = parse_config(config_path, argv, prog=prog)
    from ser_hf.experiments.training_run import run_training

    run_training(*parsed, shown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
