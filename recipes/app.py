"""Serve the demo app for a trained emotion model (Gradio, on 127.0.0.1), or export it as a Hugging Face Space.

The recipe is `ser_hf.commands.app` (also `ser-hf app`); run `python recipes/app.py --help` for its options:
    python recipes/app.py outputs/demo
    python recipes/app.py outputs/demo --export_space space/ --space_model_id OWNER/NAME
"""

import sys

from ser_hf.commands.app import main

if __name__ == "__main__":
    sys.exit(main(prog="recipes/app.py"))
