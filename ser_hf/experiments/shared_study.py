"""A study that workers on several machines share through one PostgreSQL database (`--storage postgresql://...`).

Each worker runs the same command. The database decides who does what:

- **Trials**: a worker takes the next trial under a PostgreSQL advisory lock (`next_trial`): a queued trial first
  (a retry), else a new one, and only while the study holds fewer than N finished (complete or pruned) plus running
  trials, so N workers end with exactly N finished trials between them.
- **Heartbeats**: a worker records one every `interval` seconds for the trial it runs. A trial whose heartbeat is
  older than `grace` seconds (its worker was killed, its machine lost) is failed by the next worker that looks, and
  queued again once with the same parameters and user attributes, its run dir included
  (`optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)`; the retry's system attribute `failed_trial`
  names the trial it replaces).
- **Setup**: the first worker stores what the study searches (config, space, folds, objective) in the study's user
  attributes; a worker with another setup is refused, naming what differs.
- **Report**: written once, by the worker that takes the report lock first once N trials are finished
  (`report_once`); the study's user attribute `report` records how many finished trials it covers.

Advisory locks belong to a database session: a worker that dies loses its locks with its connection, so no lock
outlives its holder. The search uses this module (`ser_hf.experiments.search`), and so do `ser-hf cv --storage`
and `ser-hf sweep`, whose trials are folds queued up front (`ser_hf.experiments.shared_folds`, `next_trial(...,
new_trials=False)`).
"""

import hashlib
import json
import logging
import os
import shlex
import shutil
import socket
import sys
import threading
import time
import warnings
import zlib
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import optuna
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from ser_hf.errors import UsageError
from ser_hf.experiments.storage_url import redact_url, storage_url

logger = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_S = 30  # a heartbeat costs one small UPDATE: cheap enough to send often
GRACE_PERIOD_S = 120  # a worker silent for this long is dead: 4 missed heartbeats, not one slow network moment
MAX_RETRY = 1  # a trial whose worker died runs once more; a second death is the trial's own fault (out of memory...)
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


@dataclass
class Heartbeat:
    """How often a worker says it is alive, and how long a silent worker's trial runs on before it is retried.

    Attributes:
        interval: seconds between two heartbeats of a running trial.
        grace: seconds without a heartbeat after which the trial is failed and queued again.
    """

    interval: int = HEARTBEAT_INTERVAL_S
    grace: int = GRACE_PERIOD_S


def worker_id():
    """HOST:PID of this worker, as trials and reports name it."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _lock_key(study_name, purpose):
    # A signed 64-bit key per (study, purpose): pg_advisory_lock takes a bigint.
    digest = hashlib.sha1(f"ser_hf:{study_name}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _rdb(storage):
    # optuna wraps a study's RDBStorage in a cache; the engine and the sessions are the wrapped storage's.
    return getattr(storage, "_backend", storage)


@contextmanager
def study_lock(study_or_storage, study_name, purpose, wait=True):
    """A PostgreSQL advisory lock for one purpose of one study, held on a connection of its own.

    Args:
        study_or_storage: an optuna study or its RDBStorage.
        study_name: the study the lock is for.
        purpose: "setup", "trials" or "report": independent locks.
        wait: block until the lock is free; False: yield at once whether it was taken.

    Yields:
        True when held; False (only with wait=False) when another worker holds it.
    """
    storage = _rdb(getattr(study_or_storage, "_storage", study_or_storage))
    key = _lock_key(study_name, purpose)
    with storage.engine.connect() as connection:
        if wait:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            held = True
        else:
            held = bool(connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar())
        connection.commit()  # a session lock outlives the transaction; leave no transaction idle meanwhile
        try:
            yield held
        finally:
            if held:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                connection.commit()


def shared_storage(url, heartbeat):
    """optuna's RDBStorage for `url` with heartbeats and the retry of a dead worker's trial.

    RDBStorage creates optuna's tables (and PostgreSQL enum types) in an empty database; two workers doing so at the
    same moment collide on the types ("duplicate key value violates unique constraint pg_type_typname_nsp_index":
    seen with two sweep workers started together). A database-wide advisory lock, held on a connection of its own,
    lets one create them while the others wait, then find them there.
    """
    engine = create_engine(storage_url(url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            key = _lock_key("", "schema")
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            connection.commit()
            try:
                return _rdb_storage(url, heartbeat)
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                connection.commit()
    finally:
        engine.dispose()


def _rdb_storage(url, heartbeat):
    with warnings.catch_warnings():  # heartbeat_interval is "experimental" in optuna's words since 2.x
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            storage_url(url), engine_kwargs={"pool_pre_ping": True}, heartbeat_interval=heartbeat.interval,
            grace_period=heartbeat.grace,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY))


def open_shared_study(url, study_name, setup, check_setup, sampler, pruner, heartbeat, first_trials=()):
    """Create the shared study or join it, under its setup lock: of workers starting at once, one creates it.

    Args:
        url: the --storage URL (postgresql://...).
        study_name: the study's name in that database.
        setup: what the study searches (JSON-able); stored by the first worker.
        check_setup: `check_setup(study, setup, where)` raises UsageError when the stored setup differs.
        sampler, pruner: this worker's optuna sampler and pruner.
        heartbeat: `Heartbeat`.
        first_trials: [(params, user_attrs), ...] queued when this worker creates the study (a search: the config
            as it is; a cross-validation: every fold), under the same lock, so no worker sees the study without them.

    Returns:
        optuna.Study (direction maximize).
    """
    try:
        storage = shared_storage(url, heartbeat)
    except OperationalError as err:  # the server, not a bug: one line (libpq's messages hold no password)
        reason = str(getattr(err, "orig", err)).strip().splitlines()[0]
        raise UsageError(f"--storage {redact_url(url)}: cannot connect to the database ({reason})") from None
    with study_lock(storage, study_name, "setup"):
        study = optuna.create_study(study_name=study_name, storage=storage, sampler=sampler, pruner=pruner,
                                    direction="maximize", load_if_exists=True)
        if "setup" not in study.user_attrs:
            study.set_user_attr("setup", setup)
            for params, user_attrs in first_trials:
                study.enqueue_trial(params, user_attrs=user_attrs)
            logger.info("Created the shared study %s in %s", study_name, redact_url(url))
        else:
            check_setup(study, setup, redact_url(url))
            logger.info("Joined the shared study %s in %s as worker %s: %d trial(s) so far", study_name,
                        redact_url(url), worker_id(), len(study.get_trials(deepcopy=False)))
    return study


def fold_launcher(launcher):
    """How a shared study's worker starts its fold processes: so that they die with it (Linux `setpriv --pdeathsig`).

    A retried trial resumes its folds in the same dirs; a fold process that outlived its killed worker would still
    hold one of them. Only this interpreter is wrapped: a user's own --launcher (accelerate launch ...) starts
    processes of its own, which it must stop itself.

    Returns:
        The --launcher value for `ser_hf.experiments.crossval.run_folds`: `launcher` unchanged when given or where
        setpriv is missing.
    """
    setpriv = shutil.which("setpriv")
    if launcher or not setpriv or not sys.platform.startswith("linux"):
        return launcher
    return shlex.join([setpriv, "--pdeathsig", "KILL", sys.executable])


def default_study_name(command, root):
    """The study name of `command` ("cv", "sweep") writing into `root`: one database holds many studies, and workers
    agree on the name when they give the same --output_dir path (else they give the same --study_name)."""
    digest = hashlib.sha1(str(Path(root).resolve()).encode()).hexdigest()[:12]
    return f"ser_hf_{command}_{digest}"


def worker_slug():
    """HOST-PID: the folder name of this worker's own files (scan report, scratch) in a shared output dir."""
    return f"{socket.gethostname()}-{os.getpid()}"


def remove_lost_locks(lost_worker, folders, lock_name):
    """A retried trial whose first worker died on another host: that host's run-dir locks in `folders` go.

    The run processes held them; they died with their worker (`fold_launcher`) or with their machine, and a lock
    written on another host cannot be checked from here (`OutputDirLock` refuses it), so the interrupted run could
    not resume. A lock of this host is left to `OutputDirLock`, which checks its pid.
    """
    lost_host = lost_worker.rsplit(":", 1)[0] if lost_worker else None
    if not lost_host or lost_host == socket.gethostname():
        return
    for folder in folders:
        lock = Path(folder) / lock_name
        try:
            host = json.loads(lock.read_text()).get("hostname")
        except (OSError, ValueError):
            continue
        if host == lost_host:
            logger.warning("Removing %s: written on %s by the lost worker of this trial's first try", lock, lost_host)
            lock.unlink(missing_ok=True)


def worker_seed(seed):
    """The TPE seed of this worker: the user's seed shifted by this worker's identity, so that two workers starting
    together do not draw the same parameters (a shared study's draws depend on timing anyway)."""
    return (seed + zlib.crc32(worker_id().encode())) % 2**32


def counts(study):
    """{"finished", "running", "waiting", "failed"}: the study's trials by state."""
    states = Counter(t.state for t in study.get_trials(deepcopy=False))
    return {"finished": sum(states[s] for s in FINISHED), "running": states[optuna.trial.TrialState.RUNNING],
            "waiting": states[optuna.trial.TrialState.WAITING], "failed": states[optuna.trial.TrialState.FAIL]}


def next_trial(study, n_trials, new_trials=True):
    """The trial this worker runs next, taken under the study's trial lock.

    Stale trials (no heartbeat for the grace period) are failed first, which queues their retries. Then a queued
    trial is taken if there is one, else a new one is started if finished + running trials are fewer than
    `n_trials`. With `new_trials` False (a study whose trials were all queued up front: the folds of a
    cross-validation, the cells of a sweep) no trial is ever drawn: the study is finished when nothing is queued or
    running, whatever failed. The trial is marked with this worker (`worker`; a retry keeps its dead worker as `lost_worker`)
    and its first heartbeat recorded before the lock goes.

    Returns:
        (optuna.Trial or None, study finished): None with False while the last trials run on other workers.
    """
    storage = study._storage
    with study_lock(study, study.study_name, "trials"), warnings.catch_warnings():
        # fail_stale_trials is "experimental" in optuna's words, and ask() warns that heartbeats are meant for
        # optimize(): this module records them itself (`heartbeats`), around ask/tell.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
        optuna.storages.fail_stale_trials(study)
        now = counts(study)
        if not new_trials and not now["waiting"]:
            return None, not now["running"]
        if new_trials and now["finished"] >= n_trials:
            return None, True
        if not now["waiting"] and now["finished"] + now["running"] >= n_trials:
            return None, False
        trial = study.ask()
        frozen = storage.get_trial(trial._trial_id)
        if "failed_trial" in frozen.system_attrs:  # a retry: its user attributes are its first try's
            trial.set_user_attr("lost_worker", frozen.user_attrs.get("worker"))
            if frozen.user_attrs.get("interrupted"):
                trial.set_user_attr("interrupted", False)
            logger.warning("Trial %d retries trial %d, whose worker %s stopped sending heartbeats", trial.number,
                           frozen.system_attrs["failed_trial"], frozen.user_attrs.get("worker", "?"))
        trial.set_user_attr("worker", worker_id())
        storage.record_heartbeat(trial._trial_id)
        return trial, False


@contextmanager
def heartbeats(study, trial):
    """Record the trial's heartbeat every interval until the block ends (a thread; the trial runs in this one)."""
    storage, stop = study._storage, threading.Event()

    def beat():
        try:
            while not stop.wait(storage.get_heartbeat_interval()):
                storage.record_heartbeat(trial._trial_id)
        finally:
            _rdb(storage).remove_session()  # this thread's database session

    thread = threading.Thread(target=beat, name=f"heartbeat-trial-{trial.number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def run_trial(study, trial, objective, catch=()):
    """Run `objective(trial)` with heartbeats and tell the study how it ended.

    A pruned trial is PRUNED; an exception in `catch` makes it FAIL and the search goes on; Ctrl-C makes it FAIL
    and queues it again (with the same parameters and run dir, as a dead worker's trial) before going up.

    Returns:
        The trial's final state.
    """
    fail = optuna.trial.TrialState.FAIL
    try:
        with heartbeats(study, trial):
            value = objective(trial)
    except optuna.TrialPruned:
        return _tell(study, trial, state=optuna.trial.TrialState.PRUNED)
    except catch as err:
        logger.warning("Trial %d failed: %s", trial.number, err)
        return _tell(study, trial, state=fail)
    except KeyboardInterrupt:
        if _tell(study, trial, state=fail) == fail:
            study._storage.get_heartbeat_stale_trial_callback()(study, study._storage.get_trial(trial._trial_id))
            logger.warning("Trial %d interrupted: marked FAIL and queued again for any worker", trial.number)
        raise
    except BaseException:
        _tell(study, trial, state=fail)
        raise
    return _tell(study, trial, value)


def _tell(study, trial, value=None, state=None):
    """study.tell, or None when the trial was already finished by another worker."""
    if _rdb(study._storage).get_trial(trial._trial_id).state.is_finished():
        # Our heartbeats stopped for longer than the grace period (a stalled machine, a lost network) and another
        # worker failed this trial and queued its retry: that retry's result counts, not this one.
        logger.error("Trial %d was taken over by another worker (no heartbeat from here for %d s): its result here "
                     "is dropped; raise --grace_period if this machine stalls that long", trial.number,
                     _rdb(study._storage).grace_period or 0)
        return None
    return study.tell(trial, value, state=state, skip_if_finished=True).state


def run_shared_trials(study, objective, n_trials, catch=(), max_failures=3, new_trials=True):
    """Take trials (`next_trial`) and run them until the study holds `n_trials` finished ones (with `new_trials`
    False: until no queued trial is left and none runs).

    A worker with nothing to take waits (one heartbeat interval at a time) while other workers run the last trials:
    if one of them dies, this worker takes its retry.

    Returns:
        False after `max_failures` failed trials in a row on this worker, else True.
    """
    failures, waiting_since = 0, None
    while True:
        trial, done = next_trial(study, n_trials, new_trials)
        if done:
            return True
        if trial is None:
            if waiting_since is None:
                waiting_since = time.monotonic()
                logger.info("The study's last trials are running on other workers: waiting for them (a dead "
                            "worker's trial is taken over after its grace period)")
            time.sleep(study._storage.get_heartbeat_interval())
            continue
        waiting_since = None
        state = run_trial(study, trial, objective, catch)
        failures = failures + 1 if state == optuna.trial.TrialState.FAIL else 0
        if failures >= max_failures:
            logger.error("%d trials in a row failed on this worker: fix the config before searching further",
                         failures)
            return False


def report_once(study, n_finished, write, force=False):
    """Call `write()` unless another worker is writing the report or it was written for `n_finished` trials.

    Args:
        study: the shared study.
        n_finished: finished trials the report covers; a study continued to more trials is reported again.
        write: writes the report and returns an exit code.
        force: write even when a report of this many trials exists (`--report true`).

    Returns:
        write()'s exit code, or None when this worker did not write (another one is or did).
    """
    with study_lock(study, study.study_name, "report", wait=False) as held:
        if not held:
            logger.info("Another worker is writing the report (%s)", study.user_attrs.get("report_writer", "?"))
            return None
        written = study.user_attrs.get("report") or {}
        if written.get("finished") == n_finished and not force:
            logger.info("The report of these %d trials was written by worker %s", n_finished, written.get("worker"))
            return None
        study.set_user_attr("report_writer", {"worker": worker_id(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        code = write()
        if code == 0:
            study.set_user_attr("report", {"finished": n_finished, "worker": worker_id(),
                                           "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        return code
