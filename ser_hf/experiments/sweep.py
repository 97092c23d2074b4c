"""A grid of settings, each cross-validated (`ser-hf sweep SWEEP.yaml`): encoders x corpora x folds, one table.

    config: recipes/configs/demo.yaml        # the base recipe
    grid:                                     # one setting per combination of the axes' values
      model_name_or_path: [A, B]              # an axis named after a recipe field sets that field
      encoder:                                # any other name: each value is a mapping of fields set together
        - {name: tiny-2l, model_type: wav2vec2, model_config_overrides: {num_hidden_layers: 2}}
    folds: all                                # every speaker fold (but --test_fold's), or a list [0, 1]
    probe: true                               # the head on cached encoder features, or fine-tuning
    fixed: {probe_epochs: 150}                # any other --field value, for every setting

A cell is one fold of one setting; it trains in OUT/<setting>/fold_k as `ser-hf cv` trains a fold. With --storage
postgresql://... any number of workers take the cells of one shared study (`ser_hf.experiments.shared_folds`);
without it one worker runs them in turn (a rerun skips finished cells and resumes an interrupted one). At the end,
once: each setting's crossval_results.md and sweep_results.json / .md (`ser_hf.reporting.sweep_report`).
"""

import hashlib
import itertools
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from ser_hf.errors import UsageError
from ser_hf.evaluation.fold_summary import fold_dir, fold_finished
from ser_hf.experiments.crossval import parse_crossval, pool_report, prepare_crossval, run_folds
from ser_hf.experiments.search_space import config_values
from ser_hf.experiments.shared_crossval import run_cells
from ser_hf.experiments.shared_folds import Cell
from ser_hf.experiments.shared_study import report_once
from ser_hf.reporting.sweep_report import write_sweep_report
from ser_hf.training.output_dir import OutputDirLock

logger = logging.getLogger(__name__)

KEYS = ("config", "grid", "folds", "probe", "fixed")
LABEL = "name"  # in a mapping value of the grid: the setting's name for it, not a field
_SLUG = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class Setting:
    """One point of the grid.

    Attributes:
        slug: its folder name under the sweep's output dir.
        values: {field: value} the grid gives it (labels left out).
        overrides: `--field value` arguments: fixed, probe and the grid's values.
    """

    slug: str
    values: dict
    overrides: list


def _fail(path, message):
    raise UsageError(f"{path}: {message}")


def _as_override(value):
    # Mappings and lists go as JSON (model_config_overrides), booleans as the recipes spell them.
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def _axis(path, name, values, fields):
    """[(label, {field: value})] of one grid axis."""
    if not isinstance(values, list) or not values:
        _fail(path, f"grid.{name} must be a non-empty list of values, e.g. {name}: [A, B]")
    if name in fields:
        return [(_label(value), {name: value}) for value in values]
    points = []
    for value in values:
        if not isinstance(value, dict):
            _fail(path, f"grid.{name} is not a recipe field, so each of its values must be a mapping of fields "
                  f"(e.g. {{corpus: demo, data_dir: data/demo}}); or name the field itself")
        unknown = sorted(set(value) - set(fields) - {LABEL})
        if unknown:
            verb = "is not a recipe field" if len(unknown) == 1 else "are not recipe fields"
            _fail(path, f"grid.{name}: {', '.join(unknown)} {verb} (see `ser-hf train --help`)")
        points.append((str(value.get(LABEL) or "-".join(_label(v) for k, v in value.items() if k != LABEL)),
                       {k: v for k, v in value.items() if k != LABEL}))
    return points


def _label(value):
    """A short name for a value in a folder name: a path's or model id's last part, a mapping's hash."""
    if isinstance(value, (dict, list)):
        return "h" + hashlib.sha1(json.dumps(value, sort_keys=True).encode()).hexdigest()[:8]
    return str(value).rstrip("/").rsplit("/", 1)[-1]


def read_sweep(path):
    """The sweep YAML, checked: (config path, [Setting], folds text or None).

    Raises:
        UsageError: a missing or unreadable file, a key other than config / grid / folds / probe / fixed, a grid
            field the recipes do not know, or a value of the wrong kind; one line naming the file and the fix.
    """
    from ser_hf.config import config_fields

    path = Path(path)
    try:
        spec = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        _fail(path, "no such file (give the sweep YAML, e.g. recipes/sweeps/demo_probe.yaml)")
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        _fail(path, f"not valid YAML{f' (line {mark.line + 1})' if mark else ''}: {getattr(err, 'problem', err)}")
    if not isinstance(spec, dict):
        _fail(path, f"must be a mapping with the keys {', '.join(KEYS)} (see recipes/sweeps/demo_probe.yaml)")
    unknown = sorted(set(spec) - set(KEYS))
    if unknown:
        _fail(path, f"unknown key {', '.join(unknown)}: a sweep has {', '.join(KEYS)} (other recipe fields go under "
              "fixed:)")
    if not spec.get("config") or not spec.get("grid") or not isinstance(spec["grid"], dict):
        _fail(path, "needs config: (the base recipe YAML) and grid: (a mapping of axes, e.g. model_name_or_path: "
              "[A, B])")
    fields, fixed = config_fields(), spec.get("fixed") or {}
    if not isinstance(fixed, dict) or set(fixed) - fields:
        extra = f" ({', '.join(sorted(set(fixed) - fields))}: not recipe fields)" if isinstance(fixed, dict) else ""
        _fail(path, f"fixed: must map recipe fields to values{extra}")
    for name in ("fold", "output_dir", "train_manifest"):
        if name in fixed or name in spec["grid"]:
            _fail(path, f"{name} does not apply to a sweep: each setting holds out every fold in turn in its own dir")
    folds = spec.get("folds", "all")
    if folds != "all" and not (isinstance(folds, list) and folds and all(isinstance(k, int) for k in folds)):
        _fail(path, f"folds: {folds!r}: give all or a list of fold numbers, e.g. [0, 1]")
    probe = spec.get("probe", True)
    if not isinstance(probe, bool):
        _fail(path, f"probe: {probe!r}: give true (the head on cached features) or false (fine-tuning)")
    config = Path(spec["config"])
    if not config.is_file() and (path.parent / config).is_file():
        config = path.parent / config
    axes = [_axis(path, name, values, fields) for name, values in spec["grid"].items()]
    base = [s for k, v in fixed.items() for s in (f"--{k}", _as_override(v))] + ["--probe", _as_override(probe)]
    settings, seen = [], {}
    for point in itertools.product(*axes):
        values = {k: v for _, fields_of in point for k, v in fields_of.items()}
        slug = _SLUG.sub("-", "__".join(label for label, _ in point)).strip("-") or "setting"
        seen[slug] = seen.get(slug, 0) + 1
        slug = slug if seen[slug] == 1 else f"{slug}-{seen[slug]}"
        grid_args = [s for k, v in values.items() for s in (f"--{k}", _as_override(v))]
        settings.append(Setting(slug, values, base + grid_args))
    return str(config), settings, None if folds == "all" else ",".join(map(str, folds))


@dataclass
class _Planned:
    setting: Setting
    args: tuple  # (model_args, data_args, training_args, root, folds, overrides) of parse_crossval


def _plan(config, settings, folds, root):
    """Every setting parsed and checked (its recipe values, folds, probe) before any cell runs."""
    plans = []
    for setting in settings:
        try:
            parsed = parse_crossval(config, [*setting.overrides, "--output_dir", str(root / setting.slug)], folds)
        except UsageError as err:
            raise UsageError(f"setting {setting.slug}: {err}") from None
        plans.append(_Planned(setting, parsed))
    return plans


def run_sweep(sweep_path, root, options=None, launcher=None, command=None):
    """`ser-hf sweep`: the cells this worker takes, then the report once (see the module docstring).

    Args:
        sweep_path: the sweep YAML (`read_sweep`).
        root: the sweep's output dir (every worker's, on a shared mount).
        options: `shared_crossval.SharedOptions` with --storage; None: one worker, here.
        launcher: how each fold starts (as `ser-hf cv --launcher`).
        command: the command line shown on the fold model cards (its password hidden).

    Returns:
        The exit code: 0 when every cell finished and the report is written (here or by another worker).
    """
    config, settings, folds = read_sweep(sweep_path)
    root = Path(root)
    plans = _plan(config, settings, folds, root)
    cells = [Cell(p.setting.slug, k, p.args[3], config, tuple(p.args[5]),
                  "test" if p.args[1].held_out_split == "test" else "validation") for p in plans for k in p.args[4]]
    if options is None:
        with OutputDirLock(root):
            status = _run_here(cells, launcher, command)
            return _write(plans, cells, status, root, command)
    setup = {"command": "sweep", "config": config_values(config, []), "folds": folds,
             "settings": {p.setting.slug: p.setting.overrides for p in plans}}
    study = options.open("sweep", root, setup, cells)
    ok, status = run_cells(study, cells, launcher, command)
    done = sum(s == "finished" for s in status.values())
    code = report_once(study, done, lambda: _write(plans, cells, status, root, command))
    if code is None:
        print(f"the sweep's cells are done; another worker writes (or wrote) the report in {root}")
    return 1 if not ok or code or done < len(cells) else 0


def _run_here(cells, launcher, command):
    """One worker: every cell in turn (finished ones skipped by `run_folds`)."""
    status = {}
    for cell in cells:
        outcome = run_folds(cell.config, list(cell.overrides), [cell.fold], cell.root, launcher=launcher,
                            command=command)[cell.fold]
        status[(cell.setting, cell.fold)] = "finished" if fold_finished(fold_dir(cell.root, cell.fold)) else outcome
    return status


def _write(plans, cells, status, root, command):
    """Each setting's cross-validation report, then the sweep's tables. Returns 0, or 1 when a cell failed."""
    reports = {}
    for plan in plans:
        _, data_args, _, setting_root, chosen, _ = plan.args
        by_fold = {k: s for (slug, k), s in status.items() if slug == plan.setting.slug}
        corpus, prepared = prepare_crossval(data_args, setting_root)
        report = pool_report(data_args, chosen, setting_root, corpus, prepared, by_fold, baseline=False,
                             task=plan.args[2].task)
        reports[plan.setting.slug] = {"values": plan.setting.values, "corpus": data_args.corpus,
                                      "data_dir": str(data_args.data_dir), "root": setting_root, "report": report,
                                      "status": by_fold}
    write_sweep_report(root, reports, command)
    print((root / "sweep_results.md").read_text())
    print(f"wrote {root}/sweep_results.json, sweep_results.md and each setting's crossval_results.md")
    failed = [f"{slug}/fold_{k}: {s}" for (slug, k), s in status.items() if s != "finished"]
    for line in failed:
        logger.error("%s", line)
    return 1 if failed else 0
