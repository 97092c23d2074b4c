"""Measure the recipes' speed side by side: data preparation, training throughput, probe mode, inference.

Usage:
    python recipes/benchmark.py [--device cpu|cuda] [--config CONFIG ...] [--steps 3] [--output bench.json]
    python recipes/benchmark.py --scale 1000 3000 10000   # only: how the one-time data work grows with the corpus
    bash run.sh bench [same options]

Every row is measured in this one process, so the ratios hold on a noisy machine; what each section measures is
`ser_hf.experiments.benchmark`.
"""

import json
import logging
import sys
from pathlib import Path

from ser_hf.commands.options import CommandParser
from ser_hf.console import command
from ser_hf.storage import write_text_atomic


def build_parser(prog=None):
    """The command's options (also read by the docs' flag check)."""
    parser = CommandParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--config", nargs="*", default=[f"recipes/configs/{name}.yaml" for name in
                                                        ("ravdess", "cremad21", "demo")],
                        help="recipe configs whose shipped settings get a training row each (a pretrained encoder "
                        "becomes a random wav2vec2-base-sized one; demo.yaml keeps its small model)")
    parser.add_argument("--data_dir", default="data/bench_ravdess48k",
                        help="a RAVDESS folder; the default one (or any missing one) is generated: noise, RAVDESS-shaped")
    parser.add_argument("--clips", type=int, default=None,
                        help="clips in the generated corpus (without it: as many as RAVDESS speech)")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps per row (after one untimed)")
    parser.add_argument("--infer_clips", type=int, default=48, help="clips for the inference comparison")
    parser.add_argument("--probe_clips", type=int, default=32,
                        help="clips run through the encoder for the probe's cache (its per-clip cost)")
    parser.add_argument("--skip", nargs="*", default=[], choices=("data", "train", "probe", "infer", "onnx"),
                        help="sections to leave out (onnx: the ONNX fp32/int8 rows of the inference section)")
    parser.add_argument("--scale", nargs="+", type=int, default=None, metavar="CLIPS",
                        help="instead of the sections above: scan, audio cache and probe cache at these corpus sizes, "
                        "each in a fresh process (ser_hf.experiments.scale)")
    parser.add_argument("--scale_dir", default="data/bench_scale", help="the generated corpus of --scale (reused)")
    parser.add_argument("--output", default="bench.json")
    return parser


@command(log_level=logging.INFO)
def main(argv=None, prog="recipes/benchmark.py"):
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    shown = " ".join([prog, *(argv if argv is not None else sys.argv[1:])])
    if args.scale:
        from ser_hf.experiments.scale import measure_scale, scale_markdown

        report = {"command": shown, "scale": measure_scale(args.scale, args.scale_dir)}
        print(scale_markdown(report["scale"], project_hours=100))
        write_text_atomic(Path(args.output), json.dumps(report, indent=2))
        return 0
    from ser_hf.experiments.benchmark import run_benchmark  # parsed: now the training stack

    run_benchmark(args, shown, generate_data=args.data_dir == parser.get_default("data_dir"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
