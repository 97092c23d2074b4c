"""IEMOCAP (USC SAIL): the 4-class benchmark of SUPERB, s3prl, SpeechBrain, EmoBox and emotion2vec.

`IEMOCAP_full_release/` (licensed: https://sail.usc.edu/iemocap/, not downloadable here) holds five sessions, each
two actors (one female, one male) in scripted and improvised dialogs:

    Session{1..5}/dialog/EmoEvaluation/<dialog>.txt      the labels (only the top-level .txt files: the folders
                                                         Categorical/, Attribute/, Self-evaluation/ hold others)
    Session{1..5}/sentences/wav/<dialog>/<utterance>.wav the audio, 16 kHz mono

An EmoEvaluation file lists each utterance on a line `[START - END]<TAB>UTTERANCE<TAB>EMO<TAB>[V, A, D]`, the
consensus category and the mean valence, activation (arousal) and dominance ratings on 1-5. The standard task keeps
4 classes: neutral, angry, sad and happy with excited merged into happy (5531 utterances in the full release: neu
1708, ang 1103, sad 1084, hap 595 + exc 1041); fru, sur, fea, dis, oth and xxx are excluded and counted.

The speaker is the person talking, not the dialog's prefix: the gender letter of the utterance's last part
(`Ses01F_impro01_M000` is the male actor of session 1; `Ses05M_script01_1b_F003` the female actor of session 5).
The protocol is leave-one-session-out: fold k holds out session k + 1 (`session_folds`), the folds SUPERB, s3prl
and EmoBox report (EmoBox's fold_<k+1> is session k + 1: its test files hold 1085 / 1023 / 1151 / 1031 / 1241
utterances).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path

from ser_hf.corpora.files import Rows
from ser_hf.errors import UsageError

logger = logging.getLogger(__name__)

IEMOCAP_LABELS = ("neutral", "angry", "sad", "happy")
# The release's codes of the 4 classes; exc(ited) is merged into happy, as SUPERB and EmoBox do.
_CODES = {"neu": "neutral", "ang": "angry", "sad": "sad", "hap": "happy", "exc": "happy"}
FULL_RELEASE_UTTERANCES = 5531  # the 4-class task on all five sessions
FULL_RELEASE_RATED = 10039  # every utterance of the release: each has valence / arousal / dominance ratings
SESSIONS = 5
IEMOCAP_DIMENSION_RANGE = (1.0, 5.0)
IEMOCAP_LICENSE = "other"  # the IEMOCAP release licence: research use, obtained from USC SAIL

_LINE = re.compile(r"^\[\s*([\d.]+)\s*-\s*([\d.]+)\s*\]\s+(\S+)\s+(\S+)\s+\[\s*([\d.]+),\s*([\d.]+),\s*([\d.]+)\s*\]")


def find_release(data_dir) -> Path:
    """The `IEMOCAP_full_release` folder: `data_dir` itself, or the one inside it.

    Raises:
        FileNotFoundError: neither holds Session1..5, with how to obtain the corpus.
    """
    data_dir = Path(data_dir)
    for root in (data_dir, data_dir / "IEMOCAP_full_release"):
        if any((root / f"Session{k}").is_dir() for k in range(1, SESSIONS + 1)):
            return root
    raise FileNotFoundError(f"IEMOCAP: no Session1..Session{SESSIONS} folders in {data_dir} (nor in "
                            f"{data_dir / 'IEMOCAP_full_release'}). Request the corpus at https://sail.usc.edu/iemocap/ "
                            "and pass the folder that holds IEMOCAP_full_release as --data_dir.")


def speaker_of(utterance: str) -> str:
    """The actor who speaks an utterance: session + the gender letter of the turn (`Ses01F_impro01_M000` -> Ses01M).

    Raises:
        UsageError: a name not of IEMOCAP's form.
    """
    parts = utterance.split("_")
    if len(parts) < 3 or not re.fullmatch(r"Ses0[1-5][FM]", parts[0]) or parts[-1][:1] not in ("F", "M"):
        raise UsageError(f"{utterance!r} is not an IEMOCAP utterance name (SesNNX_<dialog>_<F|M>NNN)")
    return parts[0][:5] + parts[-1][0]


def read_evaluation(path: Path) -> list[dict]:
    """The labelled utterances of one EmoEvaluation file: name, code, start, end, valence, arousal, dominance."""
    found = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        match = _LINE.match(line)
        if match:
            start, end, name, code, valence, arousal, dominance = match.groups()
            found.append({"utterance": name, "code": code, "start": float(start), "end": float(end),
                          "valence": float(valence), "arousal": float(arousal), "dominance": float(dominance)})
    return found


def load_iemocap(data_dir, every_rated=False) -> Rows:
    """Rows of the 4-class task: path, label, speaker (Ses01F ...), gender, session, and the raw V / A / D ratings.

    Utterances of the other labels are left out and counted (`Rows.excluded`); a labelled utterance whose wav is
    missing is an error naming it (a partial copy of the release). With `every_rated` (`--task dimensional`), every
    utterance is kept, as dimensional work on IEMOCAP uses all 10039: an utterance outside the 4 classes has its
    raw code (fru, xxx, ...) as its label, which the task does not read.

    Raises:
        FileNotFoundError: no release in `data_dir`, or wavs missing.
    """
    root = find_release(data_dir)
    rows, excluded, missing = Rows(), Counter(), []
    for session in range(1, SESSIONS + 1):
        folder = root / f"Session{session}" / "dialog" / "EmoEvaluation"
        # Top level only, and no macOS `._` shadow files: the subfolders hold other annotations.
        for evaluation in sorted(folder.glob("*.txt")) if folder.is_dir() else ():
            if evaluation.name.startswith("._"):
                continue
            for item in read_evaluation(evaluation):
                label = _CODES.get(item["code"]) or (item["code"] if every_rated else None)
                if label is None:
                    excluded[item["code"]] += 1
                    continue
                name = item["utterance"]
                wav = root / f"Session{session}" / "sentences" / "wav" / name.rsplit("_", 1)[0] / f"{name}.wav"
                if not wav.is_file():
                    missing.append(str(wav.relative_to(root)))
                    continue
                speaker = speaker_of(name)
                rows.append({"path": str(wav.resolve()), "label": label, "speaker": speaker,
                             "gender": "female" if speaker.endswith("F") else "male", "session": session,
                             "arousal": item["arousal"], "valence": item["valence"],
                             "dominance": item["dominance"]})
    if missing:
        shown = ", ".join(missing[:5]) + (f" ... and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise FileNotFoundError(f"IEMOCAP under {root}: {len(missing)} labelled utterances have no wav ({shown}); "
                                "is the copy of the release complete?")
    if not rows:
        raise FileNotFoundError(f"IEMOCAP under {root}: no labelled utterances of {', '.join(IEMOCAP_LABELS)} in "
                                "Session*/dialog/EmoEvaluation/*.txt")
    rows.excluded = {f"{code} (not one of the 4 classes)": n for code, n in sorted(excluded.items())}
    sessions = {row["session"] for row in rows}
    expected, what = (FULL_RELEASE_RATED, "rated utterances") if every_rated else (FULL_RELEASE_UTTERANCES,
                                                                                  "utterances of the 4 classes")
    if sessions == set(range(1, SESSIONS + 1)) and len(rows) != expected:
        logger.warning("IEMOCAP under %s: %d %s, where the full release has %d: a modified or partial copy? "
                       "Published numbers are on the %d.", root, len(rows), what, expected, expected)
    logger.info("IEMOCAP: %d utterances (%s); excluded by label: %s", len(rows),
                ", ".join(f"{label} {n}" for label, n in Counter(r["label"] for r in rows).most_common()),
                ", ".join(f"{code} {n}" for code, n in sorted(excluded.items())) or "none")
    return rows


def session_folds(rows) -> list[list[str]]:
    """Leave-one-session-out: fold k holds the two actors of session k + 1."""
    sessions = sorted({row["session"] for row in rows})
    return [sorted({row["speaker"] for row in rows if row["session"] == s}) for s in sessions]
