"""Classical baseline: hand-crafted prosodic/spectral features + SVM, on the same speaker folds as finetune.py.

Usage:
    python recipes/baseline_svm.py --corpus demo --data_dir data/demo --fold 5 --output_dir outputs/baseline_demo
    python recipes/baseline_svm.py --corpus ravdess --data_dir data/ravdess --all_folds --output_dir outputs/baseline

Reports UA (balanced accuracy), WA and macro-F1 on each held-out fold (and their mean +- std) and writes
OUTPUT_DIR/baseline_results.json. Hyper-parameters are chosen by an inner CV grouped by speaker.
"""

import argparse
import json
import logging
import sys
import time
from pathlib import Path

# Run from a checkout without installing. recipes/ itself comes off the path: recipes/evaluate.py would shadow
# the `evaluate` library.
_ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(_ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != _ROOT / "recipes"]

import numpy as np
from ser_hf.baseline import evaluate_svm_fold, extract_all
from ser_hf.corpora.ravdess import load_ravdess
from ser_hf.labels import RAVDESS_EMOTIONS
from ser_hf.splits import speaker_folds, split_by_fold

logger = logging.getLogger("ser_hf")
METRICS = ("ua", "wa", "macro_f1")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", choices=("ravdess", "demo"), default="demo", help="corpus in RAVDESS layout")
    parser.add_argument("--data_dir", required=True, help="corpus folder (demo: generated here when missing)")
    parser.add_argument("--n_folds", type=int, default=6, help="speaker folds (RAVDESS: 6 folds of 4 actors)")
    parser.add_argument("--fold", type=int, default=0, help="fold held out for evaluation, 0-based")
    parser.add_argument("--all_folds", action="store_true", help="evaluate every fold in turn")
    parser.add_argument("--output_dir", default="outputs/baseline_svm", help="where baseline_results.json goes")
    parser.add_argument("--workers", type=int, default=None, help="feature-extraction processes (default: all CPUs)")
    parser.add_argument("--seed", type=int, default=0)
    start, argv = time.time(), sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)

    if args.corpus == "demo":
        from ser_hf.demo_corpus import synthesize_demo_corpus

        synthesize_demo_corpus(args.data_dir)  # reuses a complete corpus, generates a missing one
    rows = [{**r, "label": r["emotion"]} for r in load_ravdess(args.data_dir)]
    folds = speaker_folds({r["speaker"]: r["gender"] for r in rows}, n_folds=args.n_folds)
    # Features once per clip; each fold then only looks them up.
    features = dict(zip((r["path"] for r in rows), extract_all([r["path"] for r in rows], workers=args.workers)))

    results = []
    for k in range(args.n_folds) if args.all_folds else [args.fold]:
        splits = split_by_fold(rows, folds, eval_fold=k, speaker_key="speaker")
        result = evaluate_svm_fold(features, splits["train"], splits["validation"], RAVDESS_EMOTIONS, seed=args.seed)
        results.append({"fold": k, "eval_speakers": folds[k], **result})
        logger.info("fold %d (%s): UA %.3f  WA %.3f  macro-F1 %.3f  best %s", k, ", ".join(folds[k]),
                    result["ua"], result["wa"], result["macro_f1"], result["best_params"])

    summary = {m: {"mean": float(np.mean([r[m] for r in results])), "std": float(np.std([r[m] for r in results]))}
               for m in METRICS}
    report = {
        "corpus": args.corpus, "data_dir": str(args.data_dir), "n_folds": args.n_folds, "n_clips": len(rows),
        "labels": list(RAVDESS_EMOTIONS), "command": " ".join(["python recipes/baseline_svm.py", *argv]),
        "folds": results, "summary": summary, "seconds": round(time.time() - start, 1),
    }
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "baseline_results.json").write_text(json.dumps(report, indent=2))
    print(" ".join(f"{m.upper()} {s['mean']:.3f} +- {s['std']:.3f}" for m, s in summary.items())
          + f" over {len(results)} fold(s); wrote {out / 'baseline_results.json'}")
    return report


if __name__ == "__main__":
    main()
