"""Serve the demo app for a trained emotion model on this machine, or export it as a Hugging Face Space.

Usage:
    python recipes/app.py MODEL_DIR_OR_HUB_ID [--host 127.0.0.1] [--port 7860] [--share false] [--top_k 3]
        [--timeline_seconds 2 --timeline_overlap 1 --silence_dbfs -50] [--examples auto|none]
        [--backend torch|onnx [--int8]] [--vad true] [--max_duration_s 60] [--max_upload_mb 25] [--queue_size 16]
        [--concurrency 1] [--cache_seconds 900]
    python recipes/app.py MODEL_DIR_OR_HUB_ID --export_space DIR [--space_model_id OWNER/NAME]

The app: upload or record audio; the top emotions with their scores (what predict.py gives for the same file), the
waveform, and for a file longer than --timeline_seconds an emotion timeline. Examples: clips of the demo corpus the
model did not train on (when the corpus is on disk), and one long file made of them.
What a request may cost is bounded for a public server (the defaults fit a free CPU Space, 2 vCPU and 16 GB):
uploads up to --max_upload_mb, recordings up to --max_duration_s (refused from the header, before decoding), a
queue of --queue_size waiting requests running --concurrency at once (the next client hears the queue is full),
each upload deleted once answered (the unanswered after --cache_seconds). A file without speech reads "no speech detected" (--vad false: the model's
answer anyway).
--export_space writes a Space folder (README front matter, app.py, requirements.txt, the ser_hf source) that runs
the same app on the model's Hub id.
"""

import logging
import sys
import tempfile
from pathlib import Path

from ser_hf.app.limits import CACHE_SECONDS, CONCURRENCY, MAX_DURATION_S, MAX_UPLOAD_MB, QUEUE_SIZE, upload_bytes
from ser_hf.commands.options import CommandParser, add_timeline_window_arguments, true_false
from ser_hf.console import command
from ser_hf.errors import UsageError
from ser_hf.inference.windows import check_chunking


def build_parser(prog=None):
    """The command's options (also read by the docs' flag check)."""
    parser = CommandParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("model", help="output dir of a training run, or a Hub model id")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0 exposes it to the network)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 takes the first free one from 7860")
    parser.add_argument("--share", type=true_false, default=False,
                        help="true: also open a public gradio.live link (sends traffic through Gradio's servers)")
    parser.add_argument("--top_k", type=int, default=3, help="how many emotions to show with their scores")
    parser.add_argument("--device", default=None, help="e.g. cpu, cuda:0 (without it: the pipeline's choice)")
    parser.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                        help="onnx: serve `ser-hf export`'s model.onnx with onnxruntime (as predict.py --backend onnx)")
    parser.add_argument("--int8", action="store_true", help="with --backend onnx: the int8 model.int8.onnx")
    add_timeline_window_arguments(parser)
    parser.add_argument("--vad", type=true_false, default=True,
                        help="true: a file without speech (voice-activity detector) reads 'no speech detected', "
                             "timeline windows follow the speech; false: the model's answer for any sound")
    parser.add_argument("--max_duration_s", type=float, default=MAX_DURATION_S,
                        help="longest recording taken, in seconds (longer ones are refused before decoding)")
    parser.add_argument("--max_upload_mb", type=float, default=MAX_UPLOAD_MB, help="largest upload, in MB")
    parser.add_argument("--queue_size", type=int, default=QUEUE_SIZE,
                        help="requests that may wait; one more is told the queue is full")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY, help="requests run at once")
    parser.add_argument("--cache_seconds", type=int, default=CACHE_SECONDS,
                        help="an answered upload is deleted at once; uploads no request answered and Gradio's "
                             "copies of results this long after they were made (keep it above --queue_size x the "
                             "slowest request)")
    parser.add_argument("--examples", choices=["auto", "none"], default="auto",
                        help="auto: held-out demo corpus clips when the corpus is on disk; none: no examples")
    parser.add_argument("--export_space", metavar="DIR", help="write a Hugging Face Space folder instead of serving")
    parser.add_argument("--space_model_id", metavar="OWNER/NAME",
                        help="the Hub id the Space loads (needed when MODEL is a local folder)")
    return parser


def _check_model(model):
    """A local model folder must hold a config; anything else that looks like a path is a missing folder."""
    path = Path(model)
    if path.is_dir() and not (path / "config.json").is_file():
        raise FileNotFoundError(f"{model} has no config.json: give a training run's output dir (bash run.sh demo "
                                "writes outputs/demo) or a Hub model id")
    if not path.exists() and (model.startswith((".", "/", "~")) or model.count("/") > 1 or path.suffix):
        raise FileNotFoundError(f"{model}: no such model folder; train one with `bash run.sh demo` (outputs/demo)")


def _examples(args, work_dir):
    if args.examples == "none":
        return []
    from ser_hf.app.examples import demo_examples, long_example

    clips = demo_examples(args.model)
    # A few clips in a row: long enough to show the timeline.
    return clips + [long_example(clips[:4], Path(work_dir) / "four_demo_clips.wav")] if len(clips) >= 2 else clips


@command(log_level=logging.WARNING)
def main(argv=None, prog=None):
    """Serve the app (until Ctrl-C) or export the Space (see the module docstring); returns 0 (serving returns when the
    server stops)."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.top_k < 1 or not 0 <= args.port < 65536:
        parser.error("--top_k must be at least 1 and --port between 0 and 65535")
    if args.int8 and args.backend != "onnx":
        parser.error("--int8 is an ONNX model: add --backend onnx (export it with `ser-hf export MODEL --int8`)")
    if min(args.max_duration_s, args.max_upload_mb) <= 0 or min(args.queue_size, args.concurrency,
                                                                 args.cache_seconds) < 1:
        parser.error("--max_duration_s and --max_upload_mb must be above 0, --queue_size, --concurrency and "
                     "--cache_seconds at least 1")
    try:
        check_chunking(args.timeline_seconds, args.timeline_overlap)
    except ValueError as err:
        parser.error(f"--timeline_seconds/--timeline_overlap: {err}")
    settings = dict(top_k=args.top_k, window_seconds=args.timeline_seconds, overlap_seconds=args.timeline_overlap,
                    silence_dbfs=args.silence_dbfs, vad=args.vad, max_duration_s=args.max_duration_s,
                    queue_size=args.queue_size, concurrency=args.concurrency, cache_seconds=args.cache_seconds)
    work_dir = tempfile.mkdtemp(prefix="ser_hf_app_examples_")
    if args.export_space:
        return _export(args, settings, work_dir)
    _check_model(args.model)
    from ser_hf.app.demo_app import build_app
    from ser_hf.inference.classify import load_classifier

    try:
        classifier = load_classifier(args.model, args.device, backend=args.backend, int8=args.int8)
    except OSError as err:  # transformers' "not a local folder and not a valid model identifier", offline misses
        if isinstance(err, FileNotFoundError):
            raise
        raise FileNotFoundError(f"{args.model}: cannot load the model: {str(err).splitlines()[0]}") from err
    demo = build_app(classifier, examples=_examples(args, work_dir), **settings)
    # Gradio's own lines tell a Python user to "set `share=True` in `launch()`": quiet, and ours name our flag.
    demo.launch(server_name=args.host, server_port=args.port or None, share=args.share, quiet=True,
                prevent_thread_lock=True, max_file_size=upload_bytes(args.max_upload_mb))
    print(f"* Running on local URL:  {demo.local_url}")
    print(f"* Public URL: {demo.share_url}" if demo.share_url else
          "* To share it with a public link as well, add --share true (traffic goes through Gradio's servers)")
    demo.block_thread()  # until Ctrl-C
    return 0


def _export(args, settings, work_dir):
    from ser_hf.app.space import export_space

    model_id = args.space_model_id or args.model
    if Path(model_id).exists() or model_id.count("/") != 1:
        raise UsageError(f"--export_space needs the model's Hub id (OWNER/NAME), got {model_id!r}: push the model "
                         "(`hf upload OWNER/NAME MODEL_DIR`, or train with --push_to_hub true) and add "
                         "--space_model_id OWNER/NAME")
    written = export_space(args.export_space, model_id, examples=_examples(args, work_dir),
                           max_upload_mb=args.max_upload_mb, **settings)
    print(f"wrote a Hugging Face Space for {model_id} in {args.export_space}: "
          f"{', '.join(p.name for p in written[:5])} and {len(written) - 5} examples")
    print(f"try it here: cd {args.export_space} && SER_HF_MODEL={Path(args.model).resolve() if Path(args.model).exists() else model_id} "
          "python app.py;  publish: hf upload --repo-type space OWNER/SPACE_NAME " + args.export_space)
    return 0


if __name__ == "__main__":
    sys.exit(main())
