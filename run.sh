#!/usr/bin/env bash
# ser_hf entry point.
#
#   bash run.sh setup                      create .venv, install requirements and system packages
#   bash run.sh demo [--field value ...]   offline demo: synthetic corpus, small model on CPU, checkpoint, pipeline
#   bash run.sh demo --cv                  the demo's 6 speaker folds (2 at a time), mean +- std beside the SVM baseline
#   bash run.sh ravdess [--data_dir DIR] [--field value ...]   the RAVDESS recipe (wav2vec2-base; a GPU job)
#   bash run.sh cremad [--data_dir DIR] [--labels 21|6] [--field value ...]   the CREMA-D recipe
#   bash run.sh iemocap --data_dir DIR [--field value ...]   IEMOCAP's 4 classes, leave one session out
#   bash run.sh msp_podcast --data_dir DIR [--field value ...]   MSP-Podcast's 8 classes on its own splits
#   bash run.sh emodb [--data_dir DIR] [--field value ...]   EmoDB's 7 emotions (downloads the free release)
#   bash run.sh emobox --emobox_dir EmoBox/data/NAME [--field value ...]   any EmoBox corpus on EmoBox's own folds
#     (demo and the corpora, train: --cv runs recipes/crossval.py, one model per speaker fold, instead of one fold;
#      --search runs recipes/search.py, an Optuna search over those folds: --n_trials N --test_fold T [--probe true])
#   bash run.sh train CONFIG.yaml [--field value ...]   any config, e.g. your own corpus (recipes/configs/custom.yaml)
#   bash run.sh predict MODEL_DIR FILE_OR_DIR ... [--top_k 3] [--output out.csv] [--timeline DIR] [--backend onnx]
#   bash run.sh app MODEL_DIR_OR_HUB_ID [--port N] [--export_space DIR]   the Gradio app on 127.0.0.1
#   bash run.sh export MODEL_DIR [--onnx OUT] [--int8]   ONNX export, checked against PyTorch
#   bash run.sh compare CV_DIR_A CV_DIR_B   two cross-validations on the same folds, paired
#   bash run.sh bench [--device cuda] [--config CONFIG ...]   speed of data, training and inference, side by side
#   bash run.sh test [pytest args]         the whole test suite, offline (installs chromium for the app's tests)
#
# Every command creates .venv on first use. Set PYTHON to choose the interpreter (3.10+).
set -euo pipefail
cd "$(dirname "$0")"

VENV=.venv
PY="$VENV/bin/python"

log() { printf '[run.sh] %s\n' "$*" >&2; }

# ffmpeg: torchcodec decodes audio through its libraries (always needed); espeak-ng: the demo corpus; chromium and
# its driver: the app's browser tests (pip cannot download a browser here). Each argument is a command, or
# COMMAND:PACKAGE where the Debian package is named otherwise.
need_system_packages() {
  local missing=() spec
  for spec in "$@"; do command -v "${spec%%:*}" >/dev/null 2>&1 || missing+=("${spec#*:}"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    log "installing ${missing[*]} with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  elif command -v apt-get >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    log "installing ${missing[*]} with sudo apt-get"
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    log "missing system packages: ${missing[*]}. Install them, e.g.:"
    log "  Debian/Ubuntu: sudo apt-get install -y ${missing[*]}"
    log "  macOS:         brew install ${missing[*]}"
    return 1
  fi
}

# torch as requirements.txt pins it. On Linux without an NVIDIA GPU, PyTorch's CPU wheel (~200 MB) instead of PyPI's
# CUDA build (several GB), which such a machine cannot use; from PyPI when that index cannot be reached.
install_torch() {
  local pin
  pin=$(grep -E '^torch==' requirements.txt)
  if "$PY" -c "import sys, torch; sys.exit(torch.__version__.split('+')[0] != '${pin#torch==}')" 2>/dev/null; then
    return 0
  fi
  if [ "$(uname -s)" = Linux ] && ! command -v nvidia-smi >/dev/null 2>&1; then
    if "$PY" -m pip install -q "$pin" --index-url https://download.pytorch.org/whl/cpu --timeout 20 --retries 1; then
      log "no NVIDIA GPU found: installed $pin, CPU build ($("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null))"
      return 0
    fi
    log "PyTorch's CPU wheel index cannot be reached: installing $pin from PyPI (on Linux, the CUDA build: several GB)"
  fi
  "$PY" -m pip install -q "$pin"
  log "installed $pin ($("$PY" -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda or "none")' 2>/dev/null))"
}

setup() {
  need_system_packages ffmpeg "$@"
  if [ ! -x "$PY" ]; then
    local python="${PYTHON:-python3}"
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
      || { log "Python 3.10+ is needed ($python is $("$python" --version 2>&1))"; exit 1; }
    log "creating $VENV"
    "$python" -m venv "$VENV"
  fi
  # Reinstall only when requirements.txt or pyproject.toml changed since the last successful install.
  local stamp="$VENV/.requirements.sha256" want
  want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    log "installing requirements.txt (torch==2.13.0, torchcodec==0.13.0, then ser_hf itself, editable) into $VENV"
    "$PY" -m pip install -q --upgrade pip
    install_torch
    # setuptools warns at every editable install that a folder named like the package may shadow it: ours is the
    # package itself (SER_HF_VERBOSE=1 shows it).
    if [ -n "${SER_HF_VERBOSE:-}" ]; then
      "$PY" -m pip install -q -r requirements.txt
    else
      PYTHONWARNINGS="ignore:Editable installation" "$PY" -m pip install -q -r requirements.txt
    fi
    echo "$want" > "$stamp"
  fi
}

# The output_dir among the arguments, or the config's default.
output_dir_from() {
  local default=$1; shift
  while [ $# -gt 0 ]; do
    case "$1" in --output_dir|--output-dir) echo "$2"; return ;; --output_dir=*) echo "${1#*=}"; return ;; esac
    shift
  done
  echo "$default"
}

cmd=${1:-help}
[ $# -gt 0 ] && shift
# What the user typed, shell-quoted, for the model card (the recipe reads it once at start).
SER_HF_COMMAND="bash run.sh $(printf '%q ' "$cmd" "$@")"
export SER_HF_COMMAND="${SER_HF_COMMAND% }"

# --cv anywhere among the arguments: the same config, cross-validated over every speaker fold; --search: a
# hyperparameter search over those folds.
recipe=recipes/finetune.py
args=()
for arg in "$@"; do
  case "$arg" in
    --cv) recipe=recipes/crossval.py ;;
    --search) recipe=recipes/search.py ;;
    *) args+=("$arg") ;;
  esac
done
set -- ${args[@]+"${args[@]}"}

case "$cmd" in
  setup)
    setup espeak-ng
    log "ready: $("$PY" -c 'import torch, transformers, datasets; print(f"torch {torch.__version__}, transformers {transformers.__version__}, datasets {datasets.__version__}")')"
    ;;
  demo)
    setup espeak-ng
    export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
    if [ "$recipe" = recipes/search.py ]; then
      "$PY" recipes/search.py recipes/configs/demo.yaml --parallel 2 "$@"
      exit
    fi
    if [ "$recipe" = recipes/crossval.py ]; then
      # Two single-threaded folds at a time get ~1.3x more done on 2 cores than one fold on both.
      "$PY" recipes/crossval.py recipes/configs/demo.yaml --parallel 2 "$@"
      exit
    fi
    out=$(output_dir_from outputs/demo "$@")
    "$PY" recipes/finetune.py recipes/configs/demo.yaml "$@"
    log "classical baseline on the same held-out actors (MFCC + prosody statistics, SVM):"
    "$PY" recipes/baseline_svm.py recipes/configs/demo.yaml "$@" --output_dir "${out}_baseline_svm"
    # A clip the model never heard in training, with its true label: one it gets right, so the showcase shows the
    # pipeline working (how often it is right is the UA above).
    showcase=$("$PY" -c 'import sys; from ser_hf.reporting.results import showcase_clip
path, true, right, n_right, n = showcase_clip(sys.argv[1])
print(path); print(f"true label: {true}; the model gets {n_right} of the {n} held-out clips right" + ("" if right else ", none of them this one"))' "$out")
    clip=$(printf '%s\n' "$showcase" | sed -n 1p)
    log "pipeline('audio-classification', model='$out') on a held-out clip ($clip), $(printf '%s\n' "$showcase" | sed -n 2p):"
    "$PY" recipes/predict.py "$out" "$clip" --top_k 3
    ;;
  ravdess)
    setup
    "$PY" "$recipe" recipes/configs/ravdess.yaml "$@"
    ;;
  cremad)
    setup
    config=recipes/configs/cremad21.yaml
    prev=""
    for arg in "$@"; do
      { [ "$prev" = --labels ] && [ "$arg" = 6 ]; } || [ "$arg" = --labels=6 ] && config=recipes/configs/cremad6.yaml
      prev=$arg
    done
    "$PY" "$recipe" "$config" "$@"
    ;;
  iemocap|msp_podcast|emodb|emobox)
    setup
    "$PY" "$recipe" "recipes/configs/$cmd.yaml" "$@"
    ;;
  train)
    setup
    # Without a config the recipe's defaults (RAVDESS) would quietly start downloading: refuse instead.
    if [ $# -eq 0 ] || [ "${1#-}" != "$1" ]; then
      log "usage: bash run.sh train CONFIG.yaml [--field value ...]   (your own corpus: recipes/configs/custom.yaml)"
      exit 2
    fi
    "$PY" "$recipe" "$@"
    ;;
  predict)
    setup
    "$PY" recipes/predict.py "$@"
    ;;
  bench)
    setup
    export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
    "$PY" recipes/benchmark.py "$@"
    ;;
  app)
    setup
    "$PY" recipes/app.py "$@"
    ;;
  export)
    setup
    "$PY" recipes/export.py "$@"
    ;;
  compare)
    setup
    "$PY" recipes/compare.py "$@"
    ;;
  test)
    # postgresql: the server of the shared-study tests (initdb/pg_ctl live off PATH, in /usr/lib/postgresql/*/bin;
    # Debian's server package brings pg_ctlcluster onto PATH, so that is what is checked)
    setup espeak-ng chromium chromedriver:chromium-driver pg_ctlcluster:postgresql
    export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
    # Two test processes, each taking whole files (module fixtures such as a trained tiny model are built once):
    # much of the suite waits on subprocesses, servers and browsers, so 2 cores finish it sooner (11.5 -> 9.5 min).
    # Extra arguments go to pytest and win: `-n 0` runs in one process, `-p no:xdist` without the plugin.
    "$PY" -m pytest -n 2 --dist loadfile tests "$@"
    ;;
  help|-h|--help)
    sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'
    ;;
  *)
    log "unknown command '$cmd'"; sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 2
    ;;
esac
