"""What several commands share (commands never import each other; they import this): the argument parser every
argparse command uses, the check of the recipe fields passed through to training, the timeline window options.
"""

import argparse

from ser_hf.console import did_you_mean, read_overrides
from ser_hf.errors import UsageError
from ser_hf.inference.timeline import OVERLAP_SECONDS, SILENCE_DBFS, WINDOW_SECONDS


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Every option's default in --help, except where there is none to show or the help already says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text:
            return text
        return super()._get_help_string(action)


class CommandParser(argparse.ArgumentParser):
    """argparse as every `ser-hf` command uses it: defaults shown in --help, no abbreviations (`--top 2` is not
    silently `--top_k 2`), and a mistake answered in one line with the closest option and the command's own --help
    (a `UsageError`, which `ser_hf.console.command` prints with exit code 2)."""

    def __init__(self, prog=None, **kwargs):
        super().__init__(prog=prog, allow_abbrev=False, formatter_class=_HelpFormatter, **kwargs)

    def options(self):
        """Every option string this parser takes (`--top_k`, `-h`, ...)."""
        return set(self._option_string_actions)

    def error(self, message):
        unknown = [w for w in message.split() if w.startswith("--")] if "unrecognized arguments" in message else []
        hint = did_you_mean(unknown[0].split("=")[0], sorted(self.options())) if unknown else ""
        raise UsageError(f"{message}{hint}; `{self.prog} --help` lists the options")


def true_false(text):
    """An argparse type for `--flag true|false`, written out as the config fields are (no abbreviations)."""
    if text.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return text.lower() == "true"


def check_field_options(passthrough, fields, parser):
    """Refuse, before any work, an option that is neither the command's own nor a recipe field it passes on.

    Args:
        passthrough: the arguments `parse_known_args` left over (`--field value` for the recipe).
        fields: the field names these may set (`ser_hf.config.config_fields()`, or the DataArguments fields).
        parser: the command's `CommandParser` (its own options join the suggestions).

    Raises:
        UsageError: naming the option, the closest known one, and `PROG --help`.
    """
    known = set(fields) | {f"no_{name}" for name in fields}
    for override in read_overrides(passthrough):
        if override.name not in known:
            flags = sorted({f"--{name}" for name in known} | parser.options())
            raise UsageError(f"unknown option --{override.name}{did_you_mean(f'--{override.name}', flags)}; "
                             f"`{parser.prog} --help` lists the options")


def add_timeline_window_arguments(parser):
    """The timeline's window options, shared by predict and the app."""
    parser.add_argument("--timeline_seconds", type=float, default=WINDOW_SECONDS,
                        help="timeline window length in seconds")
    parser.add_argument("--timeline_overlap", type=float, default=OVERLAP_SECONDS,
                        help="seconds shared by consecutive timeline windows (below --timeline_seconds)")
    parser.add_argument("--silence_dbfs", type=float, default=SILENCE_DBFS,
                        help="timeline windows quieter than this RMS level (dBFS) are labelled silence, not "
                             "classified; -inf classifies every window")
