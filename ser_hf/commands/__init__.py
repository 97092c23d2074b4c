"""The entry points: one module per command of `ser-hf` (ser_hf/cli.py) and of recipes/*.py.

This is the top layer: it parses arguments and calls the library (corpora -> data -> training -> evaluation ->
reporting). Nothing below imports from here.
"""

import functools
import sys

from ser_hf.config import UsageError


def one_line_errors(main):
    """Print a mistake the user can fix as one line and return 2: a `UsageError` (a typo, a value outside its
    choices, a contradiction) or a `FileNotFoundError` (a corpus, manifest or model folder not where it was said
    to be; the loaders' messages name the path and the fix).

    Anything else is a bug or an environment failure and keeps its traceback.
    """

    @functools.wraps(main)
    def wrapper(argv=None, prog=None):
        try:
            return main(argv, prog) if prog else main(argv)
        except (UsageError, FileNotFoundError) as err:
            print(f"{prog or 'ser-hf'}: error: {err}", file=sys.stderr)
            return 2

    return wrapper
