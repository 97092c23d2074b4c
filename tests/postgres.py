"""A private PostgreSQL server for the tests that share a study between workers: started once per session, gone after.

The server runs from Debian's binaries (`/usr/lib/postgresql/<version>/bin`, not on PATH; `bash run.sh test`
installs the `postgresql` package), in a temporary folder, listening on 127.0.0.1 at a free port and on a Unix
socket in that folder, with one password-authenticated user (so that the tests see the password hidden wherever it
could be written). As root, the server runs as an unprivileged user (initdb refuses root): `postgres` where the
package created it, else `nobody`.
"""

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

USER, PASSWORD = "ser_hf", "pw-Zq7-not-in-any-file"  # the password the tests grep for
INSTALL_HINT = ("PostgreSQL's server binaries (initdb, pg_ctl) were not found on PATH or in /usr/lib/postgresql/*/bin: "
                "`bash run.sh test` installs them (Debian/Ubuntu: apt-get install -y postgresql; macOS: brew install "
                "postgresql)")


def server_binaries():
    """The folder holding initdb and pg_ctl: PATH's, else the newest /usr/lib/postgresql/<version>/bin.

    Raises:
        FileNotFoundError: neither has them (the message says how to install them).
    """
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).resolve().parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    raise FileNotFoundError(INSTALL_HINT)


def _server_user():
    """The unprivileged user to run the server as when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root with neither a `postgres` nor a `nobody` user to run the server as")


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresServer:
    """A started server: `url(database)` for a password URL, `create_database()` for a fresh, empty database."""

    def __init__(self, bin_dir, folder, user, port):
        self.bin_dir, self.folder, self.user, self.port = Path(bin_dir), Path(folder), user, port
        self.data, self.log = self.folder / "data", self.folder / "server.log"

    def _run(self, *argv, **kwargs):
        prefix = ["runuser", "-u", self.user.pw_name, "--"] if self.user else []
        return subprocess.run([*prefix, *map(str, argv)], check=True, capture_output=True, text=True, **kwargs)

    def start(self):
        pwfile = self.folder / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        if self.user:
            os.chown(pwfile, self.user.pw_uid, self.user.pw_gid)
        self._run(self.bin_dir / "initdb", "-D", self.data, "-U", USER, "--pwfile", pwfile, "--auth-host",
                  "scram-sha-256", "--auth-local", "scram-sha-256", "-E", "UTF8", "--locale", "C")
        pwfile.unlink()
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder} -c fsync=off -c max_connections=100"
        self._run(self.bin_dir / "pg_ctl", "-D", self.data, "-l", self.log, "-o", options, "-w", "-t", "60", "start")
        return self

    def stop(self):
        with contextlib.suppress(subprocess.CalledProcessError, FileNotFoundError):
            self._run(self.bin_dir / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")

    def url(self, database="postgres"):
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def create_database(self):
        """A new empty database; returns its password URL."""
        import psycopg

        name = f"study_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(host="127.0.0.1", port=self.port, user=USER, password=PASSWORD, dbname="postgres",
                             autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return self.url(name)


@pytest.fixture(scope="session")
def postgres_server():
    """A private PostgreSQL server for the session (see the module docstring). Fails, never skips, without the
    binaries: `bash run.sh test` installs them."""
    try:
        bin_dir = server_binaries()
    except FileNotFoundError as err:
        pytest.fail(str(err))
    folder = Path(tempfile.mkdtemp(prefix="ser_hf_pg_"))  # not under pytest's root-only tmp: the server reads it
    user = _server_user()
    if user:
        os.chown(folder, user.pw_uid, user.pw_gid)
    server = PostgresServer(bin_dir, folder, user, _free_port())
    try:
        server.start()
    except subprocess.CalledProcessError as err:
        log = server.log.read_text()[-2000:] if server.log.is_file() else ""
        shutil.rmtree(folder, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start: {' '.join(err.cmd)}: {err.stderr.strip()} {log}")
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server):
    """A fresh database on the session's server, as a URL with the user's password in it."""
    return postgres_server.create_database()
