"""The `--storage` URL of a study: which database it names, whether many workers may share it, and the same URL
with its password hidden (for logs, reports and saved command lines).

    sqlite:///OUT/study.db                      one machine, one worker (the default)
    postgresql://USER:PASSWORD@HOST:PORT/DB     a study shared by workers on many machines

A password can stay out of the URL altogether: libpq reads it from `PGPASSWORD` or `~/.pgpass`.
"""

import re

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from ser_hf.errors import UsageError

STORAGE_FLAG = "--storage"
HIDDEN = "***"
# The PostgreSQL driver the package installs (psycopg 3); SQLAlchemy's bare postgresql:// means psycopg2.
POSTGRES_DRIVER = "postgresql+psycopg"
_QUERY_PASSWORD = re.compile(r"((?:^|&)password=)[^&]*", re.IGNORECASE)


def _parse(url):
    try:
        return make_url(url)
    except (ArgumentError, ValueError) as err:
        raise UsageError(f"--storage {redact_url(url)}: not a database URL ({err.__class__.__name__}); give "
                         "sqlite:///PATH/study.db or postgresql://USER:PASSWORD@HOST:PORT/DB") from None


def is_shared(url):
    """Whether the study at `url` is one that workers on several machines share (a database server, not SQLite)."""
    return url is not None and not str(url).startswith("sqlite:")


def storage_url(url):
    """The URL optuna connects with: postgresql:// and postgres:// go through psycopg 3 (the installed driver).

    Raises:
        UsageError: a URL SQLAlchemy cannot read, or a database other than SQLite and PostgreSQL (a shared study
            takes locks that only PostgreSQL's are written for).
    """
    if not is_shared(url):
        return url
    parsed = _parse(url)
    backend, _, driver = parsed.drivername.partition("+")
    if backend not in ("postgresql", "postgres"):
        raise UsageError(f"--storage {redact_url(url)}: a shared study needs PostgreSQL (postgresql://USER:PASSWORD@"
                         "HOST:PORT/DB); sqlite:///PATH/study.db for one machine")
    if driver in ("", "psycopg"):
        parsed = parsed.set(drivername=POSTGRES_DRIVER)
    return parsed.render_as_string(hide_password=False)


def redact_url(url):
    """`url` with its password replaced by *** (after USER: and in a `password=` query); unchanged without one.

    Plain string work rather than a URL parser, so that a password with an unescaped @ or / is hidden whole: all
    between the user name and the last @ before the query goes.
    """
    if url is None:
        return None
    url = str(url)
    head, question, query = url.partition("?")
    query = _QUERY_PASSWORD.sub(rf"\1{HIDDEN}", query)
    scheme, sep, rest = head.rpartition("://") if "://" in head else ("", "", head)
    credentials, at, address = rest.rpartition("@")
    if at:
        user, colon, _ = credentials.partition(":")
        rest = f"{user}:{HIDDEN}@{address}" if colon else f"{HIDDEN}@{address}" if not sep else rest
    return f"{scheme}{sep}{rest}{question}{query}"


def redact_storage_args(argv):
    """`argv` with the password inside `--storage URL` / `--storage=URL` hidden (the command line is saved)."""
    out, hide = [], False
    for arg in argv:
        if hide:
            out.append(redact_url(arg))
        elif arg.startswith(STORAGE_FLAG + "="):
            out.append(f"{STORAGE_FLAG}={redact_url(arg.split('=', 1)[1])}")
        else:
            out.append(arg)
        hide = arg == STORAGE_FLAG
    return out
