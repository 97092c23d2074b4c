"""Export a trained emotion model to ONNX (optionally int8) and check it against the PyTorch model.

Usage:
    python recipes/export.py MODEL_DIR [--onnx OUT] [--int8] [--opset 18] [--clips 8]
    ser-hf export MODEL_DIR --onnx OUT [--int8]

OUT (default MODEL_DIR/onnx) gets model.onnx (dynamic batch and time axes), model.int8.onnx with --int8, the model's
config.json and preprocessor_config.json, and export_report.json: the largest |logit difference| from PyTorch and the
top-label agreement on a few clips (the run's validation clips when its output lists them). Exit status 1 when the
ONNX model's top labels differ from PyTorch's. Run it with `ser-hf predict OUT FILES --backend onnx [--int8]`.
"""

import logging
import sys
from pathlib import Path

from ser_hf.commands.options import CommandParser
from ser_hf.console import command
from ser_hf.errors import UsageError
from ser_hf.inference.onnx_files import DEFAULT_OPSET, EXPORT_SUBDIR, REPORT_FILE


def build_parser(prog=None):
    """The command's options (also read by the docs' flag check)."""
    parser = CommandParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a training run's output dir (config.json, model.safetensors, "
                                      "preprocessor_config.json)")
    parser.add_argument("--onnx", metavar="OUT", help=f"the export folder (default: MODEL/{EXPORT_SUBDIR}, where "
                                                      "`ser-hf predict MODEL --backend onnx` looks)")
    parser.add_argument("--int8", action="store_true",
                        help="also write model.int8.onnx (dynamic int8 quantization of the linear layers)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset version")
    parser.add_argument("--clips", type=int, default=8, help="clips the parity check compares the two models on")
    return parser


@command(log_level=logging.WARNING)
def main(argv=None, prog=None):
    """Export MODEL_DIR (see the module docstring); returns 0 when the export agrees with PyTorch, 1 when it does not
    (the files and the report stay, to inspect)."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    model = Path(args.model)
    if not (model / "config.json").is_file() or not (model / "preprocessor_config.json").is_file():
        raise UsageError(f"{model}: not a saved model (needs config.json and preprocessor_config.json; pass a "
                         "training run's output dir)")
    if args.clips < 1:
        parser.error("--clips must be at least 1")
    out = Path(args.onnx) if args.onnx else model / EXPORT_SUBDIR
    from ser_hf.inference.onnx_export import ParityError, export_onnx  # parsed and checked: now torch and onnx

    try:
        report = export_onnx(model, out, quantize=args.int8, opset=args.opset, clips=args.clips)
    except ParityError as err:
        print(f"{prog or 'ser-hf export'}: parity check failed: {err}", file=sys.stderr)
        return 1
    print(_summary(report, out))
    return 0


def _agreement(parity):
    # A --task dimensional model's outputs are its values: there is no top label to agree on.
    if parity.get("regression"):
        return f"max |value difference| {parity['max_abs_logit_diff']:.1e}"
    return (f"max |logit difference| {parity['max_abs_logit_diff']:.1e}, top labels agree on "
            f"{parity['labels_agree']:.0%}")


def _summary(report, out):
    lines = [f"wrote {out} ({', '.join(f'{name} {mb} MB' for name, mb in report['files'].items())})",
             f"parity on {report['clips']}: {_agreement(report['fp32'])}"]
    if "int8" in report:
        lines.append(f"int8: {_agreement(report['int8'])}")
    lines.append(f"report: {out / REPORT_FILE}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
