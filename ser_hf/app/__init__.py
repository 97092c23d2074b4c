"""The demo app layer: a Gradio app on top of evaluation and reporting, and the Hugging Face Space that runs it.

Between reporting and commands: it shows what the library computes (predictions, timelines, plots) and holds no
logic of its own beyond laying it out; `ser_hf.commands.app` parses the command line and serves it.
"""
