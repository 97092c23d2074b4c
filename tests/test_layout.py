"""The architecture as a test: layers import only downwards, nothing edits sys.path, recipes shadow nothing."""

import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Data flows down this list and results come back up once (docs/design.md): a module may import its own layer and
# the ones before it. The base (errors, storage, labels, console, config) is ordered too: errors and labels import
# nothing of ours, storage only errors.
LAYERS = ["errors", "storage", "labels", "console", "config", "corpora", "data", "models", "training", "inference",
          "evaluation", "reporting", "experiments", "app", "commands", "cli"]


def _layer(module):
    """Index in LAYERS of a dotted ser_hf module name (ser_hf.data.scan -> 'data')."""
    return LAYERS.index(module.split(".")[1])


def _ser_hf_imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ser_hf."):
            yield node.module, node.lineno
        elif isinstance(node, ast.Import):
            yield from ((alias.name, node.lineno) for alias in node.names if alias.name.startswith("ser_hf."))


def _modules():
    for path in sorted((ROOT / "ser_hf").rglob("*.py")):
        dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        if dotted.count(".") >= 1 and not dotted.endswith("ser_hf.__init__"):
            yield dotted, path


def test_every_module_belongs_to_a_layer():
    assert {dotted.split(".")[1] for dotted, _ in _modules()} <= set(LAYERS) | {"__init__"}


def test_layers_import_only_downwards():
    upward = [f"{path.relative_to(ROOT)}:{line} imports {target}"
              for dotted, path in _modules() if not dotted.endswith("__init__") or dotted.count(".") > 1
              for target, line in _ser_hf_imports(path) if _layer(target) > _layer(dotted)]
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def test_no_file_edits_sys_path():
    # The pattern is assembled so that this file does not match itself (nor the repo's before-stop check).
    edit = re.compile(r"sys\.path" + r"(\.insert|\.append|\[:\]| *=[^=])")
    offenders = [str(p.relative_to(ROOT)) for folder in ("ser_hf", "recipes", "tests")
                 for p in (ROOT / folder).rglob("*.py") if edit.search(p.read_text())]
    assert not offenders


def test_no_recipe_shadows_an_importable_module():
    # `python recipes/X.py` puts recipes/ first on sys.path: a recipe named like a library (evaluate.py did) would
    # replace it for every import in that process. Asked of a fresh interpreter: some libraries append folders to
    # sys.path when imported (onnxruntime.quantization adds one holding a `benchmark` module), which a user's
    # `python recipes/benchmark.py` never sees before its own import of ser_hf.
    stems = sorted(p.stem for p in (ROOT / "recipes").glob("*.py"))
    probe = "import importlib.util, sys; print([s for s in sys.argv[1:] if importlib.util.find_spec(s)])"
    proc = subprocess.run([sys.executable, "-c", probe, *stems], cwd="/", capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


@pytest.mark.slow
@pytest.mark.parametrize("recipe", sorted(p.name for p in (ROOT / "recipes").glob("*.py")))
def test_recipes_run_as_users_run_them(recipe):
    # From the repo root, as the README shows: the installed package is found, and --help lists the options.
    proc = subprocess.run([sys.executable, f"recipes/{recipe}", "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith(f"usage: recipes/{recipe}")  # the recipe's own name, as the user typed it


def test_console_script_lists_every_command():
    from ser_hf.cli import COMMANDS, main

    for name, module in COMMANDS.items():
        assert importlib.util.find_spec(module) is not None, name
    assert main(["no-such-command"]) == 2


def test_the_base_imports_no_deep_learning_stack():
    # A UsageError, a label set and the one-line error handler must not cost torch's import.
    probe = ("import sys, ser_hf.errors, ser_hf.labels, ser_hf.console; "
             "print(sorted(m for m in ('torch', 'transformers', 'datasets') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


def test_no_command_imports_another_command():
    from ser_hf.cli import COMMANDS

    commands = set(COMMANDS.values())
    offenders = [f"{dotted} imports {target}" for dotted, path in _modules() if dotted in commands
                 for target, _ in _ser_hf_imports(path) if target in commands]
    assert not offenders


def test_the_windowed_decode_exists_once():
    # Long files are cut into windows in one place (ser_hf/inference/windows.py); audio is decoded by the data
    # layer's readers and the scan, nowhere else.
    ranged = [p for _, p in _modules() if "get_samples_played_in_range" in p.read_text()]
    decoders = {str(p.relative_to(ROOT)) for _, p in _modules() if "AudioDecoder(" in p.read_text()}
    assert [str(p.relative_to(ROOT)) for p in ranged] == ["ser_hf/inference/windows.py"]
    assert decoders == {"ser_hf/data/audio.py", "ser_hf/data/scan.py", "ser_hf/inference/windows.py"}


def test_only_a_command_configures_logging():
    # Library modules create loggers; handlers and levels are set where a command starts (ser_hf/console.py).
    offenders = [str(p.relative_to(ROOT)) for _, p in _modules()
                 if re.search(r"logging\.basicConfig|addHandler\(", p.read_text()) and p.name != "console.py"]
    assert not offenders
