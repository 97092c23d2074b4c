"""A grid of settings (encoders x corpora x folds), each cross-validated, one table per corpus (`ser-hf sweep`).

Usage:
    ser-hf sweep SWEEP.yaml --output_dir OUT [--launcher "accelerate launch"]
    ser-hf sweep SWEEP.yaml --output_dir /shared/OUT --storage postgresql://USER:PASSWORD@HOST:PORT/DB   (every node)
    python recipes/sweep.py recipes/sweeps/demo_probe.yaml --output_dir outputs/demo_sweep

SWEEP.yaml names the base recipe (config:), the grid (grid: one setting per combination of its axes' values), the
folds (folds: all, or a list), probe: true (the head on cached encoder features) or false (fine-tuning) and any
other recipe field for every setting (fixed:); recipes/sweeps/demo_probe.yaml is an example. A cell is one fold of
one setting, trained as `ser-hf cv` trains a fold, in OUT/<setting>/fold_k: finished cells are kept and an
interrupted one resumes. At the end OUT/<setting>/crossval_results.md per setting and OUT/sweep_results.json / .md
(one table per corpus: UA / WA / macro-F1 mean +- std over folds; the probe's per-layer tables) are written once.

Several machines: the same command on every node with --storage postgresql://... and an --output_dir all of them
reach; each takes the next unfinished cell, a dead worker's cell is retried once (docs/several-machines.md).
"""

import sys

from ser_hf.commands.options import CommandParser
from ser_hf.console import command
from ser_hf.errors import UsageError


def build_parser(prog=None):
    """The command's options (also read by the docs' flag check)."""
    parser = CommandParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("sweep", nargs="?", help="the sweep YAML (e.g. recipes/sweeps/demo_probe.yaml)")
    parser.add_argument("--output_dir", help="the sweep's folder: OUT/<setting>/fold_k and the tables (every worker's "
                        "on a shared mount)")
    parser.add_argument("--launcher", help='how each fold starts, e.g. "accelerate launch --num_processes 4"')
    parser.add_argument("--storage", help="postgresql://USER:PASSWORD@HOST:PORT/DB: one sweep shared by workers on "
                        "several machines (without it: this worker runs every cell in turn)")
    parser.add_argument("--study_name", help="with --storage: the study's name in the database (default: "
                        "ser_hf_sweep_ and a hash of the output dir's full path)")
    parser.add_argument("--heartbeat_interval", type=int, default=30,
                        help="with --storage: seconds between a running cell's heartbeats")
    parser.add_argument("--grace_period", type=int, default=120,
                        help="with --storage: seconds without a heartbeat after which a cell's worker counts as dead "
                        "and the cell is retried (once) by another worker")
    return parser


@command()
def main(argv=None, prog=None):
    parser = build_parser(prog)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if not args.sweep or not args.output_dir:
        raise UsageError("give the sweep YAML and --output_dir, e.g. recipes/sweeps/demo_probe.yaml --output_dir "
                         "outputs/demo_sweep")
    if args.study_name and not args.storage:
        raise UsageError("--study_name names a shared study: give --storage postgresql://... too")
    if args.heartbeat_interval < 1 or args.grace_period <= args.heartbeat_interval:
        raise UsageError("--heartbeat_interval must be at least 1 and --grace_period longer than it "
                         f"(given {args.heartbeat_interval} and {args.grace_period})")
    from ser_hf.experiments.shared_crossval import SharedOptions
    from ser_hf.experiments.storage_url import redact_storage_args
    from ser_hf.experiments.sweep import run_sweep
    from ser_hf.reporting.command import command_line

    options = SharedOptions(args.storage, args.study_name, args.heartbeat_interval, args.grace_period) \
        if args.storage else None
    # The command line is saved (reports, fold model cards): the database password inside --storage is hidden.
    shown = command_line(prog or "recipes/sweep.py", redact_storage_args(argv))
    return run_sweep(args.sweep, args.output_dir, options, launcher=args.launcher, command=shown)


if __name__ == "__main__":
    sys.exit(main())
