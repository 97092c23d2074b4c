"""Where a command meets the terminal: its command line read, logging set up when it starts (and put back when it
ends), and a mistake the user can fix printed as one line with exit code 2.

Every `ser-hf` command's `main` (and so every recipe in recipes/) is wrapped by `command`; library modules only
create loggers, they never configure logging. `read_overrides` is the one reader of `--field value` arguments
(the recipe's fields, the overrides cross-validation and search pass on, a search trial's config values).
Nothing here imports torch: a typo is answered before the deep-learning stack loads.
"""

import contextlib
import difflib
import functools
import logging
import os
import sys
import traceback
import warnings
from dataclasses import dataclass

import yaml

from ser_hf.errors import UsageError, WriteFailed
from ser_hf.storage import is_storage_failure, storage_cause

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextlib.contextmanager
def command_logging(level=logging.INFO):
    """ser_hf's own messages at `level`, other libraries' at WARNING, on stderr, for the duration of a command.

    A root logger that already has handlers (pytest's, an application embedding ser_hf) keeps them and its level;
    ours are removed and the levels restored when the block ends.
    """
    root, ours = logging.getLogger(), logging.getLogger("ser_hf")
    saved = root.level, ours.level
    handler = None
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(_FORMAT))
        root.addHandler(handler)
        root.setLevel(logging.WARNING)
    ours.setLevel(level)
    try:
        yield
    finally:
        if handler is not None:
            root.removeHandler(handler)
        root.setLevel(saved[0])
        ours.setLevel(saved[1])


def verbose():
    """Whether SER_HF_VERBOSE is set (1, true): third-party messages the commands otherwise filter are shown."""
    return os.environ.get("SER_HF_VERBOSE", "").lower() not in ("", "0", "false", "no")


class _DropMessages(logging.Filter):
    def __init__(self, prefixes):
        super().__init__()
        self.prefixes = tuple(prefixes)

    def filter(self, record):
        return not str(record.getMessage()).startswith(self.prefixes)


@contextlib.contextmanager
def known_noise(warning_categories=(), log_prefixes=()):
    """Hide third-party warnings a user cannot act on, for the duration of the block (all of it with
    SER_HF_VERBOSE=1): Python warnings of `warning_categories`, and log records (any logger) starting with one of
    `log_prefixes`. Filters are put back when the block ends."""
    if verbose():
        yield
        return
    drop = _DropMessages(log_prefixes)
    handlers = list(logging.getLogger().handlers)
    with warnings.catch_warnings():
        for category in warning_categories:
            warnings.simplefilter("ignore", category)
        for handler in handlers:
            handler.addFilter(drop)
        try:
            yield
        finally:
            for handler in handlers:
                handler.removeFilter(drop)


def command(log_level=logging.INFO):
    """Decorate a command's `main(argv=None, prog=None)`: logging for its duration, and one-line errors.

    A `UsageError` (a typo, a value outside its choices, a contradiction) or a `FileNotFoundError` (a corpus,
    manifest or model folder not where it was said to be; the loaders' messages name the path and the fix) is
    printed as `PROG: error: MESSAGE` and the command returns 2; a `WriteFailed` (a full disk, a quota, an I/O
    error while we wrote) the same way with code 1, and so is any other exception that is the storage failing a
    library's write (`storage.is_storage_failure`), with the traceback only when SER_HF_VERBOSE=1. Anything else is
    a bug or an environment failure and keeps its traceback.

    Args:
        log_level: the level of ser_hf's own loggers (WARNING for commands whose output is a table on stdout).
    """

    def decorate(main):
        @functools.wraps(main)
        def wrapper(argv=None, prog=None):
            with command_logging(log_level):
                try:
                    return main(argv, prog) if prog else main(argv)
                except (UsageError, FileNotFoundError) as err:
                    print(f"{prog or 'ser-hf'}: error: {err}", file=sys.stderr)
                    return 2
                except WriteFailed as err:  # the disk, not the arguments
                    return _write_failure(prog, str(err))
                except Exception as err:
                    if not is_storage_failure(err):
                        raise
                    # A library's own write (the Trainer's state, a plot) failed on a full disk: still one line.
                    return _write_failure(prog, f"a write failed ({storage_cause(err)}). Free space and rerun the "
                                                "same command (a training run: with --resume true)")

        return wrapper

    return decorate


def _write_failure(prog, message):
    """Print a storage failure as one line (its traceback too with SER_HF_VERBOSE=1) and return exit code 1."""
    if verbose():
        traceback.print_exc()
    print(f"{prog or 'ser-hf'}: error: {message}", file=sys.stderr)
    return 1


def did_you_mean(name, known):
    """" (did you mean '--fold'?)" for the closest of `known`, or "" when none is close."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass(frozen=True)
class Override:
    """One `--field value` of a command line: `argv[start:end]` spells it.

    Attributes:
        name: the field, dashes read as underscores (`--eval-strategy` is `eval_strategy`).
        value: the text after `=` or the next argument; None for a bare flag (`--fp16`, `--no_fp16`).
    """

    name: str
    value: str | None
    start: int
    end: int


def read_overrides(argv):
    """Split `--field value` / `--field=value` / `--flag` arguments; a value never starts with `--`.

    Raises:
        UsageError: an argument that is neither an option nor an option's value.
    """
    found, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            raise UsageError(f"unexpected argument {arg!r}: options are --field value")
        name, has_value, text = arg[2:].partition("=")
        name = name.replace("-", "_")
        if has_value:
            found.append(Override(name, text, i, i + 1))
        elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            found.append(Override(name, argv[i + 1], i, i + 2))
        else:
            found.append(Override(name, None, i, i + 1))
        i = found[-1].end
    return found


def _typed(text):
    """A command-line value as YAML would hold it: 1e-3 -> 0.001, true -> True, a JSON object -> dict."""
    value = yaml.safe_load(text)
    if isinstance(value, str):
        for kind in (int, float):
            try:
                return kind(value)
            except ValueError:
                pass
    return value


def override_values(argv):
    """{field: value} of `--field value` arguments, typed as YAML would hold them (`--flag` true, `--no_flag` false)."""
    values = {}
    for override in read_overrides(argv):
        if override.value is not None:
            values[override.name] = _typed(override.value)
        elif override.name.startswith("no_"):
            values[override.name[3:]] = False
        else:
            values[override.name] = True
    return values


def pop_option(args, name):
    """Remove `--name value` / `--name=value` from the list `args` and return the value (None when absent)."""
    for override in read_overrides(args):
        if override.name == name:
            del args[override.start:override.end]
            return override.value
    return None
