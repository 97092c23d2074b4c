"""Push a training output folder to the Hugging Face Hub, minus what must not be published.

Trainer's output folder holds more than the model: `training_args.bin` pickles the TrainingArguments
including the raw `hub_token`, checkpoints carry optimizer state, `runs/` holds TensorBoard logs. Only
the files a user of the model needs are pushed: weights, configs, the model card, metrics and plots.
"""

import logging
from pathlib import Path

from huggingface_hub import HfApi, constants, get_token
from huggingface_hub.utils import filter_repo_objects

logger = logging.getLogger(__name__)

# Glob patterns in huggingface_hub's syntax (fnmatch on the posix path relative to the folder; `*` also
# matches `/`; a pattern ending in `/` means everything below that folder). Each file-name pattern is given
# twice, bare for the top level and with `*/` for subfolders.
UPLOAD_EXCLUDE = (
    # Pickled TrainingArguments: contains the hub token in clear.
    "training_args.bin", "*/training_args.bin",
    # Resumable training state: large, useless to model users.
    "checkpoint-*/", "*/checkpoint-*/", "tmp-checkpoint-*/",
    "optimizer*", "*/optimizer*", "scheduler*", "*/scheduler*", "rng_state*", "*/rng_state*",
    "*.pt", "*.pth", "*.ckpt",
    "trainer_state.json", "*/trainer_state.json",
    # Local corpus paths, for recipes/evaluate_model.py on this machine only.
    "data_args.json",
    # Pseudo-labelling's earlier rounds (ser_hf/experiments/pseudo_rounds.py): whole runs of their own, not this model.
    "pseudo_round_*/",
    # Experiment-tracker logs.
    "runs/", "*/runs/", "wandb/", "*tfevents*",
    # Half-written or lock files from an interrupted or concurrent run.
    "*.lock", "*.tmp", "*.temp", "*.partial", "*.incomplete",
    # Hidden files: .git*, .gitattributes (would replace the Hub's LFS rules), .cache/, editor droppings.
    ".*", "*/.*",
)


def files_to_upload(output_dir) -> list[str]:
    """List the files `push_output_dir` would upload.

    Args:
        output_dir: a training output folder.

    Returns:
        Sorted posix paths relative to `output_dir` of every file not matched by `UPLOAD_EXCLUDE`
        (model.safetensors, config.json, preprocessor_config.json, README.md, results json, PNG, CSV, ...).
        The filter is huggingface_hub's own, so this is exactly what `upload_folder` selects.
    """
    root = Path(output_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"Output folder not found: {root}")
    paths = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    return list(filter_repo_objects(paths, ignore_patterns=list(UPLOAD_EXCLUDE)))


def push_output_dir(
    output_dir, repo_id, private=False, commit_message="Upload SER model trained with ser_hf", token=None
) -> str:
    """Create the Hub repo if needed and upload the publishable files of an output folder.

    Args:
        output_dir: the training output folder (with model.safetensors, config.json, README.md, ...).
        repo_id: `"user/name"` or `"name"` (then created under the token's user).
        private: create the repo as private (ignored when it already exists).
        commit_message: message of the upload commit.
        token: a Hub token; None lets huggingface_hub resolve it (`HF_TOKEN`, then the saved login).
            The token is never logged.

    Returns:
        URL of the model repo.

    Raises:
        RuntimeError: offline mode is on, or no token can be found.
        FileNotFoundError: `output_dir` does not exist.
    """
    files = files_to_upload(output_dir)
    if "README.md" not in files:
        logger.warning("%s has no README.md: the repo will have no model card.", output_dir)
    if constants.HF_HUB_OFFLINE:
        raise RuntimeError("HF_HUB_OFFLINE is set: unset it to push to the Hub.")
    if token is None and get_token() is None:
        raise RuntimeError(
            "No Hugging Face token found. Log in with `hf auth login` or set the HF_TOKEN environment "
            "variable to a token with write access (https://huggingface.co/settings/tokens)."
        )

    api = HfApi()
    repo_url = api.create_repo(repo_id, token=token, private=private, exist_ok=True)
    # create_repo completes a bare name with the user's namespace.
    full_repo_id = getattr(repo_url, "repo_id", None) or repo_id
    logger.info("Uploading %d files from %s to %s", len(files), output_dir, full_repo_id)
    # Both lists: the allow list is what files_to_upload showed, the ignore list still holds should a file
    # appear between listing and upload (e.g. a checkpoint written by a run still going).
    api.upload_folder(
        repo_id=full_repo_id,
        folder_path=str(output_dir),
        commit_message=commit_message,
        token=token,
        allow_patterns=[_literal(f) for f in files],
        ignore_patterns=list(UPLOAD_EXCLUDE),
    )
    return str(repo_url)


def _literal(path):
    # upload_folder treats allow patterns as globs: bracket the metacharacters so a name matches only itself.
    return "".join(f"[{c}]" if c in "*?[" else c for c in path)
