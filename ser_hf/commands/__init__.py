"""The `ser-hf` commands (ser_hf/cli.py) and recipes/*.py: one thin module per command.

This is the top layer: each module parses its arguments and calls one function of the library. A command module
never imports another; argument groups several commands share live in `ser_hf.commands.options`.
"""
