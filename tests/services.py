"""Real services for the test suite: a throwaway PostgreSQL + PostGIS cluster and a mosquitto broker.

Both run on a free loopback port in a temporary directory and are removed afterwards. Nothing is mocked.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise RuntimeError("PostgreSQL is not installed: run `make test` (it installs postgresql and postgis)")


def _as_postgres(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    """Run a server command as the `postgres` user when we are root (initdb refuses root)."""
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


class PostgisCluster:
    """A PostgreSQL cluster with PostGIS, in a temporary directory, on a free loopback port."""

    def __init__(self) -> None:
        self.bindir = _pg_bindir()
        self.dir = Path(tempfile.mkdtemp(prefix="cim-pg-"))
        self.port = free_port()
        self.data = self.dir / "data"
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        os.chmod(self.dir, 0o755)

    def start(self) -> PostgisCluster:
        _as_postgres([str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                      "--no-sync", "-E", "UTF8"])
        opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                f"-c synchronous_commit=off -c full_page_writes=off")
        _as_postgres([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", opts, "-l",
                      str(self.dir / "log"), "-w", "-t", "60", "start"])
        self.psql("CREATE DATABASE cim_test")
        self.psql("CREATE EXTENSION postgis", db="cim_test")
        return self

    def psql(self, sql: str, db: str = "postgres") -> str:
        out = subprocess.run([str(self.bindir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                              "-d", db, "-v", "ON_ERROR_STOP=1", "-qAtc", sql],
                             check=True, capture_output=True, text=True)
        return out.stdout

    def url(self, db: str = "cim_test", **query: str) -> str:
        q = "&".join(f"{k}={v}" for k, v in query.items())
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{db}" + (f"?{q}" if q else "")

    def stop(self) -> None:
        try:
            _as_postgres([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"])
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


class MosquittoBroker:
    """A mosquitto broker on a free loopback port with its own config, pid, log and persistence files."""

    def __init__(self, port: int | None = None, persistence: bool = True, users: dict[str, str] | None = None) -> None:
        """``users`` (name: password): only they may connect (no anonymous clients)."""
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not os.path.exists(exe):
            raise RuntimeError("mosquitto is not installed: run `make test` (it installs mosquitto)")
        self.exe = exe
        self.dir = Path(tempfile.mkdtemp(prefix="cim-mqtt-"))
        os.chmod(self.dir, 0o777)
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        conf = [f"listener {self.port} 127.0.0.1", f"allow_anonymous {'false' if users else 'true'}",
                f"pid_file {self.dir}/mosquitto.pid", f"log_dest file {self.dir}/mosquitto.log",
                f"persistence {'true' if persistence else 'false'}", f"persistence_location {self.dir}/",
                "autosave_interval 1"]
        if os.geteuid() == 0:
            conf.append("user root")
        if users:
            passwd = self.dir / "passwd"
            for i, (name, password) in enumerate(users.items()):
                subprocess.run([shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd", "-b",
                                *(["-c"] if i == 0 else []), str(passwd), name, password], check=True)
            conf.append(f"password_file {passwd}")
        (self.dir / "mosquitto.conf").write_text("\n".join(conf) + "\n")

    def start(self) -> MosquittoBroker:
        self.proc = subprocess.Popen([self.exe, "-c", str(self.dir / "mosquitto.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"mosquitto exited: {self.proc.stderr.read().decode()}") from None
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start within 10 s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
