"""The command line that produced a run, as printed on its model card: secrets redacted, shell-quoted."""

import shlex

SECRET_ARGS = ("--hub_token", "--hub-token")


def _redact(argv):
    """The command line with secret values replaced: it is printed on the model card."""
    out, hide = [], False
    for arg in argv:
        if hide:
            out.append("***")
        elif arg.split("=", 1)[0] in SECRET_ARGS and "=" in arg:
            out.append(arg.split("=", 1)[0] + "=***")
        else:
            out.append(arg)
        hide = arg in SECRET_ARGS
    return out


def command_line(script, argv, wrapper=None):
    """The command that produced this run: what the user typed (through run.sh or crossval), and the call it made.

    Args:
        script: the recipe as the user would type it: "recipes/finetune.py" (run with python) or "ser-hf train".
        argv: the arguments the recipe received.
        wrapper: the command the user typed when it was not this call itself (run.sh, crossval), or None.
    """
    start = ["python", script] if script.endswith(".py") else shlex.split(script)
    python_call = shlex.join([*start, *_redact(argv)])
    if wrapper:
        # run.sh hands over its arguments shell-quoted (printf %q): parse them back, re-quote them the same
        # way as the python call, so both lines paste into a shell as they are.
        try:
            wrapper = shlex.join(_redact(shlex.split(wrapper)))
        except ValueError:  # not shell syntax after all: redact word by word
            wrapper = " ".join(_redact(wrapper.split()))
    return f"{wrapper}\n# which ran:\n{python_call}" if wrapper else python_call
