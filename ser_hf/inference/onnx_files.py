"""What an ONNX export folder holds (`ser-hf export`), named once for the exporter, the backend and the command line
(which reads them for `--help` without importing torch)."""

ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
REPORT_FILE = "export_report.json"
EXPORT_SUBDIR = "onnx"  # where `ser-hf export MODEL_DIR` writes by default, and where predict looks in a run dir
DEFAULT_OPSET = 18
