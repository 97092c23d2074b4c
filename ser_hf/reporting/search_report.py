"""The hyperparameter search's report: every trial in a table, the best config as a ready-to-run YAML, and plots.

Files in the search's output dir: `trials.csv` / `trials.md` (one row per trial: state, mean +- std validation UA
over the folds it ran, each fold's UA, its parameters, its time), `search_results.json` / `.md` (the best trial
beside the config's own values, scored on the same folds), `best_config.yaml`, and optuna's
`optimization_history.png` and `param_importances.png`.
"""

import csv
import json
import logging
import warnings
from pathlib import Path

import matplotlib
import numpy as np
import optuna

from ser_hf.config import write_config
from ser_hf.storage import atomic_output, atomic_write, write_text_atomic

logger = logging.getLogger(__name__)

TRIALS_CSV, TRIALS_TABLE = "trials.csv", "trials.md"
SEARCH_RESULTS_FILE, SEARCH_TABLE_FILE = "search_results.json", "search_results.md"
BEST_CONFIG = "best_config.yaml"


def _note(trial, retried_by=None):
    notes = []
    if trial.user_attrs.get("config_defaults"):
        notes.append("the config's own values")
    if "retry_of" in trial.user_attrs:
        notes.append(f"retry of trial {trial.user_attrs['retry_of']}")
    if "failed_trial" in trial.system_attrs:  # a shared study's retry (optuna's RetryHeartbeatStaleTrialCallback)
        notes.append(f"retry of trial {trial.system_attrs['failed_trial']}")
    if trial.user_attrs.get("killed") or trial.user_attrs.get("interrupted"):
        notes.append("interrupted (killed), queued again")
    elif trial.number in (retried_by or {}) and trial.state == optuna.trial.TrialState.FAIL:
        notes.append(f"its worker stopped (no heartbeat): retried as trial {retried_by[trial.number]}")
    if trial.state == optuna.trial.TrialState.PRUNED:
        notes.append(f"pruned after {len(trial.user_attrs.get('fold_ua', {}))} fold(s)")
    if "error" in trial.user_attrs:
        notes.append(trial.user_attrs["error"])
    return "; ".join(notes)


def trial_rows(study, folds):
    """One row per trial: number, state, mean_ua, std_ua (population, over the folds it ran), ua_fold_<k>,
    the parameters, seconds, note."""
    names = list(dict.fromkeys(name for t in study.trials for name in t.params))
    retried_by = {t.system_attrs["failed_trial"]: t.number for t in study.trials if "failed_trial" in t.system_attrs}
    rows = []
    for trial in study.trials:
        scores = {int(k): v for k, v in trial.user_attrs.get("fold_ua", {}).items()}
        values = list(scores.values())
        row = {"trial": trial.number, "state": trial.state.name,
               "mean_ua": float(np.mean(values)) if values else None,
               "std_ua": float(np.std(values)) if values else None}
        row.update({f"ua_fold_{k}": scores.get(k) for k in folds})
        row.update({name: trial.params.get(name) for name in names})
        row.update({"seconds": trial.user_attrs.get("seconds"), "cpu_seconds": trial.user_attrs.get("cpu_seconds"),
                    "note": _note(trial, retried_by)})
        rows.append(row)
    return rows


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def trials_markdown(rows):
    """The trials as a markdown table (UA in %): complete trials best first, then the pruned and failed ones (whose
    means cover fewer folds)."""
    if not rows:
        return "No trials yet."
    keys = list(rows[0])
    ordered = sorted(rows, key=lambda r: (r["state"] != "COMPLETE", r["mean_ua"] is None, -(r["mean_ua"] or 0)))
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in ordered:
        cells = [f"{100 * row[k]:.1f}" if (k in ("mean_ua", "std_ua") or k.startswith("ua_fold_"))
                 and row[k] is not None else _cell(row[k]) for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_trials_table(rows, root):
    """trials.csv (all values) and trials.md (best first)."""
    root = Path(root)
    with atomic_write(root / TRIALS_CSV, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["trial"])
        writer.writeheader()
        writer.writerows(rows)
    write_text_atomic(root / TRIALS_TABLE, trials_markdown(rows) + "\n")
    return root / TRIALS_CSV, root / TRIALS_TABLE


def write_best_config(config, path, summary, command):
    """The best trial's config, with a header saying where it comes from and how to run it."""
    best = summary["best"]
    header = "\n".join([
        f"The best config of the hyperparameter search in {Path(path).parent} (trial {best['trial']}):",
        f"mean validation UA {100 * best['mean_ua']:.1f} +- {100 * best['std_ua']:.1f} % over folds {summary['folds']}"
        + (f" (test fold {summary['test_fold']} held out of the search)" if summary["test_fold"] is not None else ""),
        "Chosen on those folds, so that mean is optimistic; the cross-validation of this config, with the test fold's "
        f"score, is in {summary['best_cv']}/crossval_results.md.",
        f"Searched: {', '.join(f'{k}={v!r}' for k, v in best['params'].items())}",
        f"Search:  {command}",
        f"Run:     ser-hf train {path} [--fold K]     or: ser-hf cv {path}",
    ])
    return write_config(config, path, header)


def _save(ax, path):
    figure = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
    with atomic_output(path) as tmp:
        figure.savefig(tmp, format=Path(path).suffix[1:] or "png", dpi=120, bbox_inches="tight")
    import matplotlib.pyplot as plt  # optuna's plots draw with pyplot: close its figure, keep no global state

    plt.close(figure)
    return path


def plot_search(study, root):
    """optimization_history.png and param_importances.png (optuna.visualization.matplotlib).

    Returns:
        The paths written; importances need two complete trials with different values and are skipped otherwise.
    """
    from optuna.visualization import matplotlib as optuna_plots

    root, written = Path(root), []
    # optuna's plots switch pyplot to the ggplot style: rc_context puts every setting back afterwards.
    with warnings.catch_warnings(), matplotlib.rc_context():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if complete:
            ax = optuna_plots.plot_optimization_history(study, target_name="mean validation UA")
            written.append(_save(ax, root / "optimization_history.png"))
        try:
            ax = optuna_plots.plot_param_importances(study)
            written.append(_save(ax, root / "param_importances.png"))
        except (ValueError, RuntimeError, ZeroDivisionError) as err:
            logger.info("No parameter-importance plot yet (%s)", err)
    return written


def search_summary(study, best, reference, folds, test_fold, rows, extra=None):
    """The JSON of search_results.json: the best trial and the config's own values on the same folds."""
    by_number = {row["trial"]: row for row in rows}

    def describe(trial):
        if trial is None:
            return None
        row = by_number[trial.number]
        return {"trial": trial.number, "mean_ua": row["mean_ua"], "std_ua": row["std_ua"],
                "fold_ua": trial.user_attrs.get("fold_ua", {}), "params": trial.params,
                "run_dir": trial.user_attrs.get("run_dir")}

    states = {}
    for trial in study.trials:
        states[trial.state.name] = states.get(trial.state.name, 0) + 1
    seconds = [row["seconds"] for row in rows if row["seconds"] and row["state"] in ("COMPLETE", "PRUNED")]
    cpu = [row["cpu_seconds"] for row in rows if row["cpu_seconds"] and row["state"] in ("COMPLETE", "PRUNED")]
    return {"folds": list(folds), "test_fold": test_fold, "objective": "mean validation UA over the folds",
            "best": describe(best), "config_defaults": describe(reference), "trials": states,
            "trial_seconds_mean": float(np.mean(seconds)) if seconds else None,
            "trials_per_hour": 3600 / float(np.mean(seconds)) if seconds else None,
            "trial_cpu_seconds_mean": float(np.mean(cpu)) if cpu else None, **(extra or {})}


def search_markdown(summary, rows):
    """search_results.md: the best trial beside the config's own values, then every trial."""
    def line(name, entry):
        if not entry:
            return f"- {name}: not run"
        return (f"- {name} (trial {entry['trial']}): mean validation UA {100 * entry['mean_ua']:.1f} +- "
                f"{100 * entry['std_ua']:.1f} % over folds {summary['folds']}; "
                + ", ".join(f"{k}={v!r}" for k, v in entry["params"].items()))

    lines = [f"# Hyperparameter search: {sum(summary['trials'].values())} trials "
             f"({', '.join(f'{v} {k.lower()}' for k, v in summary['trials'].items())})", "",
             line("best", summary["best"]), line("the config's own values", summary["config_defaults"])]
    if summary["trials_per_hour"]:
        lines.append(f"- {summary['trial_seconds_mean']:.1f} s a trial on average ({summary['trials_per_hour']:.0f} "
                     "trials an hour on this machine)")
    lines += ["", "The best mean is the maximum over trials on the same folds, so it is optimistic; with --test_fold "
              "the best config's fold models are scored on the test fold, which no trial touched, in "
              f"{summary.get('best_cv')}/crossval_results.md.", "",
              trials_markdown(rows)]
    return "\n".join(lines) + "\n"


def write_search_report(root, summary, rows):
    """search_results.json / .md and the trials table."""
    root = Path(root)
    write_text_atomic(root / SEARCH_RESULTS_FILE, json.dumps(summary, indent=2, default=str))
    write_text_atomic(root / SEARCH_TABLE_FILE, search_markdown(summary, rows))
    write_trials_table(rows, root)
