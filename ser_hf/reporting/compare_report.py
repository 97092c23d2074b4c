"""The comparison of two cross-validations as a markdown table and a JSON file."""

import json
from pathlib import Path

from ser_hf.storage import write_text_atomic


def _pct(value):
    return f"{100 * value:.1f}"


def _signed(value):
    return f"{100 * value:+.1f}"


def _p_value(p):
    return "p n/a" if p is None else "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _p(test):
    return _p_value(None if test is None else test["p"])


def comparison_markdown(result):
    """Per-fold UA of A and B and B - A, the mean +- std row, the pooled difference with its CI, and the tests."""
    lines = [f"A: {result['a']}", f"B: {result['b']}", "",
             "| fold | held-out speakers | clips | UA A % | UA B % | B - A (points) |", "|---|---|---|---|---|---|"]
    for row in result["folds"]:
        lines.append(f"| {row['fold']} | {', '.join(row['speakers'])} | {row['clips']} | {_pct(row['ua_a'])} | "
                     f"{_pct(row['ua_b'])} | {_signed(row['diff'])} |")
    s = result["fold_summary"]
    lines.append(f"| **mean +- std** | {len(result['folds'])} folds | {sum(r['clips'] for r in result['folds'])} | "
                 f"{_pct(s['ua_a']['mean'])} +- {_pct(s['ua_a']['std'])} | {_pct(s['ua_b']['mean'])} +- "
                 f"{_pct(s['ua_b']['std'])} | {_signed(s['diff']['mean'])} +- {_pct(s['diff']['std'])} |")
    pooled, ci, tests, clips = result["pooled"], result["pooled"]["ci"], result["tests"], result["clips"]
    lines += [
        "",
        f"Pooled over all {pooled['clips']} held-out clips: UA A {_pct(pooled['ua_a'])} %, B {_pct(pooled['ua_b'])} %, "
        f"B - A {_signed(pooled['diff'])} points, {round(100 * ci['confidence'])} % paired bootstrap CI "
        f"[{_signed(ci['low'])}, {_signed(ci['high'])}] ({ci['resamples']} resamples of {ci['unit']}s, seed "
        f"{ci['seed']}; B ahead in {_pct(ci['share_b_better'])} % of them).",
        f"Per clip: both right {clips['both_right']}, only A {clips['only_a_right']}, only B {clips['only_b_right']}, "
        f"both wrong {clips['both_wrong']} (McNemar exact {_p_value(clips['mcnemar_p'])}).",
        f"Over the {tests['folds']} folds: paired t-test {_p(tests['paired_t'])}, Wilcoxon signed-rank "
        f"{_p(tests['wilcoxon'])} (with {tests['folds']} folds no Wilcoxon p can be below "
        f"{tests['wilcoxon_min_p']:.3f}).",
    ]
    if ci["unit"] == "clip":
        lines.append("Clips of one speaker are not independent: the clip bootstrap's interval is narrower than a "
                     "speaker-level one (--bootstrap_unit speaker); the fold tests are the speaker-level evidence.")
    return "\n".join(lines)


def write_comparison(result, path):
    """The comparison as JSON at `path` and as markdown beside it (same name, .md). Returns the JSON path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(result, indent=2))
    write_text_atomic(path.with_suffix(".md"), comparison_markdown(result) + "\n")
    return path
