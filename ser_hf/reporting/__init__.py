"""Layer 5: what a run leaves for people: the model card, plots, results files, the cross-validation report, the Hub push."""
