"""Reporting: what a run leaves for people. The model card, plots, results and predictions files, the reports of
cross-validation, search, comparisons, pseudo-labels and timelines, and the Hub push."""
