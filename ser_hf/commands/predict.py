"""Classify audio files or folders with a trained emotion model and print (or save) the top-k emotions.

Usage:
    python recipes/predict.py MODEL_DIR_OR_HUB_ID FILE_OR_FOLDER [...] [--top_k 3] [--output preds.csv|preds.json]
        [--chunk_seconds 10 --chunk_overlap 5] [--batch_size 16] [--backend torch|onnx [--int8]]
        [--timeline DIR [--timeline_seconds 2 --timeline_overlap 1 --silence_dbfs -50]] [--vad true|false]

Every file gets a row: a prediction, or an error saying why (unreadable, too short, NaN/Inf audio, ...).
A file in which the voice-activity detector (silero-vad) finds no speech (silence, hum, noise) gets the label
"no speech detected" and no scores: the model has no such class and would name an emotion anyway. Files with speech
get exactly the pipeline's scores. --vad false classifies every file as the model alone does.
Files longer than --chunk_seconds are classified in overlapping windows and the probabilities averaged.
A model trained with --task multitask (a local folder with intensity_head.safetensors) adds an intensity column.
A --task dimensional model gives each file its arousal, dominance and valence (0-1) instead of emotions (the mean
over the windows of a long file); --top_k does not apply and --timeline is refused.
With --timeline DIR, each file also gets an emotion timeline (per-window predictions over time, the same window
logic with shorter windows, placed over the detected speech; the time between labelled "no speech detected", quiet
windows "silence"): DIR/<stem>_timeline.csv, .json and .png.
Exit status 0 when at least one file was classified, 1 when none was.
"""

import logging
import sys
import time

from ser_hf.commands.options import CommandParser, add_timeline_window_arguments, true_false
from ser_hf.console import command
from ser_hf.errors import UsageError
from ser_hf.inference.windows import check_chunking


def build_parser(prog=None):
    """The command's options (also read by the docs' flag check)."""
    parser = CommandParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("model", help="output dir of a training run, or a Hub model id")
    parser.add_argument("inputs", nargs="+", help="audio files and/or folders (searched recursively)")
    parser.add_argument("--top_k", type=int, default=3, help="how many emotions to show per file")
    parser.add_argument("--output", help="also write the predictions to this .csv or .json file")
    parser.add_argument("--device", default=None, help="e.g. cpu, cuda:0 (without it: the pipeline's choice)")
    parser.add_argument("--chunk_seconds", type=float, default=10.0,
                        help="files longer than this are classified in windows of this length")
    parser.add_argument("--chunk_overlap", type=float, default=5.0,
                        help="seconds shared by consecutive windows (must be below --chunk_seconds)")
    parser.add_argument("--batch_size", type=int, default=16,
                        help="clips per forward pass (1: the plain pipeline, file by file); the labels are the same")
    parser.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                        help="onnx: run `ser-hf export`'s model.onnx with onnxruntime; MODEL is then the export "
                             "folder, or the training output dir holding it in onnx/")
    parser.add_argument("--int8", action="store_true", help="with --backend onnx: the int8 model.int8.onnx")
    parser.add_argument("--timeline", metavar="DIR",
                        help="also write an emotion timeline per file: DIR/<stem>_timeline.csv, .json and .png")
    add_timeline_window_arguments(parser)
    parser.add_argument("--vad", type=true_false, default=True,
                        help="true: files without speech (voice-activity detector) are labelled 'no speech detected' "
                             "instead of classified, timeline windows follow the speech; false: the model on "
                             "everything")
    return parser


@command(log_level=logging.WARNING)
def main(argv=None, prog=None):
    """Classify the files and folders on the command line (see the module docstring); returns 0 when every file was
    classified, 1 when any was not (each has an ERROR row, and every other file its prediction), so a script notices."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.top_k < 1 or args.batch_size < 1:
        parser.error("--top_k and --batch_size must be at least 1")
    if args.int8 and args.backend != "onnx":
        parser.error("--int8 is an ONNX model: add --backend onnx (export it with `ser-hf export MODEL --int8`)")
    try:
        check_chunking(args.chunk_seconds, args.chunk_overlap)
    except ValueError as err:
        parser.error(f"--chunk_seconds/--chunk_overlap: {err}")
    try:
        check_chunking(args.timeline_seconds, args.timeline_overlap)
    except ValueError as err:
        parser.error(f"--timeline_seconds/--timeline_overlap: {err}")

    # Parsed and checked: only now the inference stack (torch, transformers) is imported.
    from ser_hf.inference.classify import classify_files, collect_audio_files, load_classifier, regression_outputs
    from ser_hf.inference.intensity import add_intensity_to_rows
    from ser_hf.inference.vad import NO_SPEECH
    from ser_hf.models.intensity_head import has_intensity_head, load_intensity_head
    from ser_hf.reporting.predictions import format_table, write_predictions

    files = collect_audio_files(args.inputs)
    if not files:
        parser.error(f"no audio files found in {args.inputs}")
    classifier = load_classifier(args.model, args.device, backend=args.backend, int8=args.int8)
    if args.timeline and regression_outputs(classifier):
        raise UsageError(f"--timeline draws the top emotion of each window; {args.model} is a --task dimensional "
                         "model (arousal, dominance, valence values, no emotion classes): drop --timeline")
    start = time.perf_counter()
    rows = classify_files(classifier, files, top_k=args.top_k, chunk_seconds=args.chunk_seconds,
                          chunk_overlap=args.chunk_overlap, batch_size=args.batch_size, vad=args.vad)
    # A --task multitask model: a second forward per file gives its intensity (the ONNX export has no intensity head).
    if args.backend == "torch" and has_intensity_head(args.model):
        add_intensity_to_rows(classifier, load_intensity_head(args.model), rows, args.chunk_seconds, args.chunk_overlap)
    seconds = time.perf_counter() - start
    print(format_table(rows))
    print(f"{len(rows)} files in {seconds:.1f} s ({len(rows) / max(seconds, 1e-9):.1f} clips/s)", file=sys.stderr)
    if args.output:
        print(f"wrote {write_predictions(rows, args.output)}")
    if args.timeline:
        _write_timelines(classifier, rows, args)
    quiet = sum(r["label"] == NO_SPEECH and not r["error"] for r in rows)
    if quiet:
        print(f"{quiet} of {len(rows)} files: no speech detected, not classified (--vad false classifies them "
              "anyway)", file=sys.stderr)
    failed = sum(bool(r["error"]) for r in rows)
    if failed:
        print(f"{failed} of {len(rows)} files could not be classified (see ERROR rows)", file=sys.stderr)
    return 1 if failed else 0





def _write_timelines(classifier, rows, args):
    """A timeline per classified file (a file with an error row already says why it has none)."""
    from ser_hf.inference.timeline import emotion_timeline
    from ser_hf.reporting.timeline_report import save_timeline, timeline_stem

    taken = set()
    for row in rows:
        if row["error"]:
            continue
        timeline = emotion_timeline(classifier, row["path"], args.timeline_seconds, args.timeline_overlap,
                                    args.silence_dbfs, vad=args.vad)
        if timeline["error"]:
            print(f"{row['path']}: no timeline: {timeline['error']}", file=sys.stderr)
            continue
        written = save_timeline(timeline, args.timeline, timeline_stem(row["path"], taken))
        print(f"wrote {written['csv']} ({len(timeline['windows'])} windows), .json, .png")


if __name__ == "__main__":
    sys.exit(main())
