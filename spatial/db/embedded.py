"""The embedded PostGIS cluster: a private PostgreSQL under ``var/``.

With no ``SPATIAL_DATABASE_URL`` the platform runs its own cluster: ``initdb`` once,
then ``pg_ctl`` on a private port on 127.0.0.1 and a private Unix socket directory.
PostgreSQL refuses to run as root, so when we are root the cluster is owned and run by
an unprivileged account (``postgres`` by default) and every server program is started
as that user. A cluster left running by a killed process is detected and reused; a
stale lock from a dead one is cleared and the cluster restarted.

The layout under ``var/pg/``::

    cluster.json   port, superuser, password, data/socket/log paths (mode 0600)
    data/          PGDATA
    run/           Unix socket directory
    postgresql.log server log

When the unprivileged account cannot reach ``var/`` (a checkout under a private home
directory), PGDATA and the socket go to ``/var/lib/spatial/<hash>/`` instead and
``cluster.json`` records where.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg import sql

from spatial.db import extensions
from spatial.errors import ConfigurationError, DatabaseUnavailableError
from spatial.settings import EmbeddedSettings

EXTENSIONS = ("postgis", "postgis_raster")
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes; leave room for "/.s.PGSQL.NNNNN"
_START_TIMEOUT_S = 60
_SERVER_SETTINGS = {
    # Modest memory for a 2-core laptop-class machine; production uses an external server.
    "shared_buffers": "256MB",
    "work_mem": "32MB",
    "maintenance_work_mem": "256MB",
    "max_connections": "200",
    "listen_addresses": "'127.0.0.1'",
    "logging_collector": "off",
    "timezone": "'UTC'",
    "jit": "off",
}


@dataclass(frozen=True)
class ClusterInfo:
    """What ``cluster.json`` records about an initialised cluster."""

    data_dir: str
    socket_dir: str
    log_file: str
    port: int
    superuser: str
    password: str
    database: str
    os_user: str | None
    """The account that runs the server, or None when it runs as the invoking user."""

    def url(self, database: str | None = None, *, tcp: bool = False) -> str:
        """A libpq URL for the cluster: through its Unix socket, or over TCP on 127.0.0.1.

        The socket is the platform's own way in: a tile read through it cost the API a
        quarter less CPU than through loopback TCP. TCP is for programs that cannot reach
        the socket directory (another account's desktop GIS on the same machine).
        """
        db = database or self.database
        user = f"{self.superuser}:{self.password}"
        if tcp:
            return f"postgresql://{user}@127.0.0.1:{self.port}/{db}"
        return f"postgresql://{user}@/{db}?host={quote(self.socket_dir)}&port={self.port}"


@dataclass(frozen=True)
class ClusterStatus:
    """The state of the embedded cluster as ``spatial db status`` reports it."""

    initialised: bool
    running: bool
    pid: int | None
    port: int | None
    data_dir: str | None
    postgres_version: str | None = None
    postgis_version: str | None = None
    pgrouting_version: str | None = None


def pg_bindir() -> Path:
    """Directory of the PostgreSQL server programs (initdb, pg_ctl, postgres)."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    msg = (
        "PostgreSQL server programs (initdb, pg_ctl) were not found. Install them with "
        "'sudo apt-get install postgresql-15 postgresql-15-postgis-3' (or run 'make demo' "
        "as root), or set SPATIAL_DATABASE_URL to an existing PostGIS server."
    )
    raise ConfigurationError(msg)


class EmbeddedCluster:
    """Create, start, stop and inspect the private cluster under ``var_dir/pg``."""

    def __init__(self, var_dir: Path, settings: EmbeddedSettings | None = None) -> None:
        """Describe (not touch) the cluster that lives under ``var_dir``."""
        self.settings = settings or EmbeddedSettings()
        self.root = Path(var_dir).resolve() / "pg"
        self.info_file = self.root / "cluster.json"

    # -- facts ---------------------------------------------------------------------

    def info(self) -> ClusterInfo | None:
        """The recorded cluster, or None when it was never initialised."""
        if not self.info_file.is_file():
            return None
        data: dict[str, Any] = json.loads(self.info_file.read_text(encoding="utf-8"))
        info = ClusterInfo(**data)
        if not (Path(info.data_dir) / "PG_VERSION").is_file():
            return None
        return info

    def status(self) -> ClusterStatus:
        """Whether the cluster exists and runs, with versions when it answers."""
        info = self.info()
        if info is None:
            return ClusterStatus(
                initialised=False, running=False, pid=None, port=None, data_dir=None
            )
        pid = self._running_pid(info)
        found = self._versions(info) if pid else None
        return ClusterStatus(
            initialised=True,
            running=pid is not None,
            pid=pid,
            port=info.port,
            data_dir=info.data_dir,
            postgres_version=found.postgres if found else None,
            postgis_version=found.postgis if found else None,
            pgrouting_version=found.pgrouting if found else None,
        )

    # -- life cycle ------------------------------------------------------------------

    def ensure_running(self) -> ClusterInfo:
        """Initialise the cluster if needed, start it if it is not running, return it.

        Idempotent and cheap when the cluster already answers. A server left running by
        a killed process is reused; a dead one's stale lock file is cleared.

        Raises:
            DatabaseUnavailableError: the server did not start; the message quotes its log.
        """
        with self._lock():
            info = self.info() or self._initdb()
            if self._running_pid(info) is None or not self._answers(info):
                info = self._start(info)
            self._ensure_database(info)
            return info

    def stop(self, mode: str = "fast") -> bool:
        """Stop the server; True if it was running."""
        info = self.info()
        if info is None or self._running_pid(info) is None:
            return False
        self._run_pg(info, ["pg_ctl", "-D", info.data_dir, "-m", mode, "-w", "stop"])
        return True

    # -- internals -----------------------------------------------------------------

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialise start-up between processes (``spatial serve`` and a CLI call at once)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _os_user(self) -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        name = self.settings.os_user
        try:
            return pwd.getpwnam(name)
        except KeyError:
            subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--user-group",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    name,
                ],
                check=True,
                capture_output=True,
            )
            return pwd.getpwnam(name)

    def _as_user(self, user: pwd.struct_passwd | None) -> dict[str, Any]:
        if user is None:
            return {}
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": user.pw_dir if Path(user.pw_dir).is_dir() else "/",
        }
        return {
            "user": user.pw_uid,
            "group": user.pw_gid,
            "extra_groups": [],
            "env": env,
            "cwd": "/",
        }

    def _reachable_by(self, user: pwd.struct_passwd | None, path: Path) -> bool:
        if user is None:
            return True
        probe = subprocess.run(["test", "-x", str(path)], check=False, **self._as_user(user))
        return probe.returncode == 0

    def _layout(self, user: pwd.struct_passwd | None) -> tuple[Path, Path, Path]:
        """PGDATA, socket directory and log file for a new cluster."""
        self.root.mkdir(parents=True, exist_ok=True)
        base = self.root
        if not self._reachable_by(user, self.root):
            digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:12]
            base = Path("/var/lib/spatial") / digest
            base.mkdir(parents=True, exist_ok=True)
        sock = base / "run"
        if len(str(sock)) > _SOCKET_PATH_MAX:
            digest = hashlib.sha256(str(base).encode()).hexdigest()[:12]
            sock = Path("/tmp") / f"spatial-pg-{digest}"  # noqa: S108 - short socket path
        return base / "data", sock, base / "postgresql.log"

    def _chown(self, user: pwd.struct_passwd | None, *paths: Path) -> None:
        if user is None:
            return
        for path in paths:
            os.chown(path, user.pw_uid, user.pw_gid)

    def _initdb(self) -> ClusterInfo:
        user = self._os_user()
        data, sock, log = self._layout(user)
        if data.exists() and any(data.iterdir()):
            # A half-finished earlier initdb: nothing of value can be in it.
            shutil.rmtree(data)
        for path in (data, sock):
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
            path.chmod(0o700)
        log.touch()
        self._chown(user, data, sock, log)
        password = secrets.token_urlsafe(24)
        pwfile = data.parent / ".initdb-pw"
        pwfile.write_text(password + "\n", encoding="utf-8")
        pwfile.chmod(0o600)
        self._chown(user, pwfile)
        try:
            self._run_pg(
                None,
                [
                    "initdb",
                    "-D",
                    str(data),
                    "-U",
                    self.settings.superuser,
                    f"--pwfile={pwfile}",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    "--no-instructions",
                ],
                user=user,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        info = ClusterInfo(
            data_dir=str(data),
            socket_dir=str(sock),
            log_file=str(log),
            port=self.settings.port or _free_port(_preferred_port(self.root)),
            superuser=self.settings.superuser,
            password=password,
            database=self.settings.database,
            os_user=user.pw_name if user else None,
        )
        self._write_config(info)
        self._save(info)
        return info

    def _write_config(self, info: ClusterInfo) -> None:
        lines = [f"{key} = {value}" for key, value in _SERVER_SETTINGS.items()]
        lines += [f"port = {info.port}", f"unix_socket_directories = '{info.socket_dir}'"]
        conf = Path(info.data_dir) / "spatial.conf"
        conf.write_text(
            "# Written by spatial.db.embedded\n" + "\n".join(lines) + "\n", encoding="utf-8"
        )
        main = Path(info.data_dir) / "postgresql.conf"
        text = main.read_text(encoding="utf-8")
        if "include_if_exists = 'spatial.conf'" not in text:
            main.write_text(text + "\ninclude_if_exists = 'spatial.conf'\n", encoding="utf-8")
        self._chown(self._os_user(), conf, main)

    def _save(self, info: ClusterInfo) -> None:
        tmp = self.info_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(info), indent=2) + "\n", encoding="utf-8")
        tmp.chmod(0o600)
        tmp.replace(self.info_file)

    def _start(self, info: ClusterInfo) -> ClusterInfo:
        pid = self._running_pid(info)
        if pid is not None:
            # Running but not answering: a hung or half-dead server. Restart it.
            self._run_pg(
                info, ["pg_ctl", "-D", info.data_dir, "-m", "immediate", "-w", "stop"], check=False
            )
        self._clear_stale_lock(info)
        if not _port_free(info.port):
            info = ClusterInfo(**{**asdict(info), "port": _free_port(info.port + 1)})
            self._write_config(info)
            self._save(info)
        Path(info.socket_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
        self._chown(self._os_user(), Path(info.socket_dir))
        result = self._run_pg(
            info,
            [
                "pg_ctl",
                "-D",
                info.data_dir,
                "-l",
                info.log_file,
                "-w",
                "-t",
                str(_START_TIMEOUT_S),
                "start",
            ],
            check=False,
        )
        if result.returncode != 0 or not self._answers(info):
            tail = _tail(Path(info.log_file))
            msg = f"the embedded PostgreSQL did not start ({result.stderr.strip()}).\n{tail}"
            raise DatabaseUnavailableError(msg)
        return info

    def _clear_stale_lock(self, info: ClusterInfo) -> None:
        """Remove ``postmaster.pid`` when the process it names is not a postgres server."""
        lock = Path(info.data_dir) / "postmaster.pid"
        if not lock.is_file():
            return
        pid = _lock_pid(lock)
        if pid is None or not _is_postgres(pid):
            lock.unlink()

    def _running_pid(self, info: ClusterInfo) -> int | None:
        lock = Path(info.data_dir) / "postmaster.pid"
        pid = _lock_pid(lock) if lock.is_file() else None
        return pid if pid is not None and _is_postgres(pid) else None

    def _connect(self, info: ClusterInfo, database: str | None = None) -> psycopg.Connection:
        return psycopg.connect(info.url(database), connect_timeout=5, autocommit=True)

    def _answers(self, info: ClusterInfo) -> bool:
        deadline = time.monotonic() + 10
        while True:
            try:
                with self._connect(info, "postgres") as conn:
                    conn.execute("SELECT 1")
                return True
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.2)

    def _ensure_database(self, info: ClusterInfo) -> None:
        with self._connect(info, "postgres") as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (info.database,)
            ).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(info.database)))
        with self._connect(info) as conn:
            for ext in EXTENSIONS:
                conn.execute(
                    sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(ext))
                )

    def _versions(self, info: ClusterInfo) -> extensions.Versions | None:
        try:
            with self._connect(info) as conn:
                return extensions.versions(conn)
        except psycopg.Error:
            return None

    def _run_pg(
        self,
        info: ClusterInfo | None,
        argv: list[str],
        *,
        check: bool = True,
        user: pwd.struct_passwd | None = None,
    ) -> subprocess.CompletedProcess[str]:
        if info is not None and info.os_user:
            user = pwd.getpwnam(info.os_user)
        argv = [str(pg_bindir() / argv[0]), *argv[1:]]
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            check=False,
            timeout=_START_TIMEOUT_S + 30,
            **self._as_user(user),
        )
        if check and result.returncode != 0:
            msg = f"{Path(argv[0]).name} failed: {result.stderr.strip() or result.stdout.strip()}"
            raise DatabaseUnavailableError(msg)
        return result


def _lock_pid(lock: Path) -> int | None:
    try:
        first = lock.read_text(encoding="utf-8").splitlines()[0]
        return int(first.strip())
    except (OSError, ValueError, IndexError):
        return None


def _is_postgres(pid: int) -> bool:
    try:
        comm = Path(f"/proc/{pid}/comm").read_text(encoding="utf-8").strip()
    except OSError:
        return False
    return comm in {"postgres", "postmaster"}


def _preferred_port(root: Path) -> int:
    """A port derived from the checkout path, so two checkouts rarely collide."""
    digest = int(hashlib.sha256(str(root).encode()).hexdigest(), 16)
    return 55000 + digest % 1000


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port(start: int) -> int:
    for port in range(start, start + 200):
        if 1024 <= port <= 65535 and _port_free(port):
            return port
    msg = f"no free TCP port on 127.0.0.1 near {start}"
    raise DatabaseUnavailableError(msg)


def _tail(path: Path, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    return ""
