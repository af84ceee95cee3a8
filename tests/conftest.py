"""Shared fixtures: database URLs for SQLite and for a PostgreSQL server found or made on demand.

Fixtures (the contract other test modules rely on):

* ``postgres_url`` (session): ``postgresql://USER@HOST:PORT/ledger_test``.
* ``fresh_postgres_url`` (function): ``<postgres_url>?schema=t_<12 hex>``, a new empty schema in
  ``ledger_test`` that is dropped (CASCADE) after the test.
* ``sqlite_url`` (function): ``sqlite:////<tmp_path>/ledger.db`` (absolute path, four slashes).
* ``database_url`` (function): parametrized ``[sqlite]`` / ``[postgres]``; the postgres case is
  marked ``postgres`` and yields a ``fresh_postgres_url``.
* ``postgres_server`` (session): the provisioned server (``admin_url``, ``source``), rarely needed.

Where PostgreSQL comes from, first match wins:

a. ``LEDGER_TEST_POSTGRES_URL`` (any database on the server; ``ledger_test`` is used beside it).
   If it is set but unusable the run aborts: an explicit choice never silently falls through.
b. A server at ``postgresql://postgres@127.0.0.1:5432/postgres`` (the port can be changed with
   ``LEDGER_TEST_POSTGRES_PROBE_PORT``, e.g. ``1`` to force the next step).
c. A throwaway cluster made with ``initdb``/``pg_ctl`` (PATH or ``/usr/lib/postgresql/*/bin``)
   in a temporary directory, on a free 127.0.0.1 port, stopped and deleted at session end.
d. None: with ``CI=true`` the run aborts (exit code 3); otherwise every PostgreSQL test is skipped
   and a banner in the terminal summary says so.

Nothing is provisioned unless a selected test needs PostgreSQL: a test needs it when it is marked
``postgres`` or uses one of the PostgreSQL fixtures (such tests get the marker automatically, so
``-m "not postgres"`` deselects them all).
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

TEST_DATABASE = "ledger_test"
ENV_URL = "LEDGER_TEST_POSTGRES_URL"
ENV_PROBE_PORT = "LEDGER_TEST_POSTGRES_PROBE_PORT"
DEFAULT_PROBE_PORT = 5432
CONNECT_TIMEOUT_S = 3
POSTGRES_MARKER_LINE = "postgres: needs a PostgreSQL server (provisioned by tests/conftest.py)"
POSTGRES_FIXTURES = frozenset({"postgres_server", "postgres_url", "fresh_postgres_url"})
CI_EXIT_CODE = 3
HOW_TO_FIX = (
    f"Start PostgreSQL on 127.0.0.1:5432 (trust auth), set {ENV_URL}, "
    "or install PostgreSQL so that initdb and pg_ctl can be found."
)


class PostgresUnavailable(Exception):
    """No PostgreSQL server could be found or started; the message says why."""


# --------------------------------------------------------------------------------------------
# URLs
# --------------------------------------------------------------------------------------------


def in_ci() -> bool:
    """True when running under CI (``CI=true``), where PostgreSQL tests must never be skipped."""
    return os.environ.get("CI", "").strip().lower() == "true"


def libpq_url(url: str) -> str:
    """Return ``url`` in a form psycopg accepts: no ``+driver`` suffix, no ``schema`` parameter."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "schema"]
    return urlunsplit((scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def with_database(url: str, database: str, schema: str | None = None) -> str:
    """Return ``url`` pointing at ``database`` and, if given, selecting ``schema``."""
    parts = urlsplit(libpq_url(url))
    query = parse_qsl(parts.query, keep_blank_values=True)
    if schema is not None:
        query.append(("schema", schema))
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", urlencode(query), ""))


def redact(url: str) -> str:
    """Hide the password of ``url`` for display."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def connect(url: str) -> psycopg.Connection[tuple[object, ...]]:
    """Open an autocommit connection with a short connect timeout."""
    return psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, for compact reasons."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


# --------------------------------------------------------------------------------------------
# The server and the test database
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostgresServer:
    """A reachable PostgreSQL server: a maintenance URL and where it came from."""

    admin_url: str
    source: str

    def database_url(self, schema: str | None = None) -> str:
        """URL of the ``ledger_test`` database on this server, optionally selecting a schema."""
        return with_database(self.admin_url, TEST_DATABASE, schema)


def ensure_test_database(admin_url: str) -> None:
    """Create ``ledger_test`` unless it exists; a concurrent creator winning the race is fine.

    ``template0`` with UTF8 and the C locale keeps it independent of the cluster's defaults and
    of anybody connected to ``template1``; C collation also sorts like SQLite and Python do.
    """
    with connect(admin_url) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (TEST_DATABASE,)
        ).fetchone()
        if exists:
            return
        statement = sql.SQL(
            "CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"
        ).format(sql.Identifier(TEST_DATABASE))
        # Two sessions racing: the loser sees one of these; the database exists either way.
        with contextlib.suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
            conn.execute(statement)


def prepared(server: PostgresServer) -> PostgresServer:
    """Make sure ``server`` has the test database, then return it."""
    ensure_test_database(server.admin_url)
    relax_durability(server.database_url())
    return server


def relax_durability(url: str) -> None:
    """Commit without waiting for the WAL flush in ``ledger_test`` (new sessions only).

    The tests kill clients and workers, never the server, so no committed row can be lost;
    what they check (atomicity, isolation, order, locks) is unchanged. Commits stop waiting
    for the disk, which is most of a small transaction's time on a slow one. The benchmark
    (scripts/bench) works in its own database at the server's settings.
    """
    with connect(url) as conn:
        conn.execute(sql.SQL("ALTER DATABASE {} SET synchronous_commit = off").format(
            sql.Identifier(TEST_DATABASE)))


# --------------------------------------------------------------------------------------------
# A throwaway cluster (initdb + pg_ctl)
# --------------------------------------------------------------------------------------------


def find_pg_bindir() -> Path | None:
    """A directory with both ``initdb`` and ``pg_ctl``: PATH first, then the newest Debian one."""
    candidates: list[Path] = []
    on_path = shutil.which("initdb")
    if on_path:
        candidates += [Path(on_path).parent, Path(on_path).resolve().parent]

    def version(path: str) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", path))

    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    candidates += [Path(p) for p in debian]
    for directory in candidates:
        if all(os.access(directory / tool, os.X_OK) for tool in ("initdb", "pg_ctl")):
            return directory
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cluster_owner() -> pwd.struct_passwd | None:
    """The account to run the cluster as: ``postgres`` when we are root, else nobody special."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError as exc:
        raise PostgresUnavailable("running as root and there is no 'postgres' user") from exc


def as_user(argv: list[str], owner: pwd.struct_passwd | None) -> list[str]:
    """Wrap ``argv`` so that it runs as ``owner`` (PostgreSQL refuses to run as root)."""
    if owner is None:
        return argv
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", owner.pw_name, "--", *argv]
    su = shutil.which("su")
    if su:
        return [su, "-s", "/bin/sh", owner.pw_name, "-c", shlex.join(argv)]
    raise PostgresUnavailable("running as root and neither runuser nor su was found")


class ThrowawayCluster:
    """A PostgreSQL cluster in a temporary directory, alive for one test session."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.owner = cluster_owner()
        self.root = Path(tempfile.mkdtemp(prefix="ledger-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        self.running = False
        if self.owner is not None:
            os.chown(self.root, self.owner.pw_uid, self.owner.pw_gid)
        atexit.register(self.destroy)

    @property
    def admin_url(self) -> str:
        """Maintenance URL of the cluster (TCP, trust auth)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def run(self, *argv: str, timeout: float) -> None:
        """Run a PostgreSQL tool as the cluster owner; raise with its output if it fails."""
        command = as_user([str(self.bindir / argv[0]), *argv[1:]], self.owner)
        done = subprocess.run(
            command, cwd=self.root, capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            output = (done.stdout + done.stderr).strip()[-2000:]
            raise PostgresUnavailable(f"{argv[0]} failed ({done.returncode}): {output}")

    def init(self) -> None:
        """initdb with trust auth, UTF8 and the C locale."""
        self.run(
            "initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust",
            "-E", "UTF8", "--locale=C", "--no-sync", timeout=180,
        )  # fmt: skip

    def start(self, attempts: int = 3) -> None:
        """Start on a free port (retrying, bounded, if another process grabbed it first)."""
        last: PostgresUnavailable | None = None
        for _ in range(attempts):
            self.port = free_port()
            options = " ".join(
                [
                    "-c listen_addresses=127.0.0.1",
                    f"-p {self.port}",
                    f"-c unix_socket_directories={shlex.quote(str(self.root))}",
                    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
                ]
            )
            try:
                self.run(
                    "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                    "-o", options, "start", timeout=90,
                )  # fmt: skip
            except PostgresUnavailable as exc:
                last = PostgresUnavailable(f"{exc}\n{self.log_tail()}")
                continue
            self.running = True
            return
        assert last is not None
        raise last

    def log_tail(self, limit: int = 1500) -> str:
        """The end of the server log, for error messages."""
        try:
            return self.log.read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def destroy(self) -> None:
        """Stop the server (immediate: the data is thrown away) and delete the directory."""
        if self.running:
            self.running = False
            with contextlib.suppress(PostgresUnavailable, OSError, subprocess.SubprocessError):
                self.run(
                    "pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-t", "30", "stop",
                    timeout=60,
                )  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# The provider: tries (a) to (d) once per session
# --------------------------------------------------------------------------------------------


class PostgresProvider:
    """Finds or makes a PostgreSQL server once per session and cleans up after it."""

    def __init__(self) -> None:
        self.attempted = False
        self.server: PostgresServer | None = None
        self.reason = ""
        self.skipped = 0
        self.cluster: ThrowawayCluster | None = None

    def get(self) -> PostgresServer | None:
        """The server, provisioning it on first call; ``None`` (with ``reason``) if unavailable.

        Aborts the run (``pytest.exit``) when ``LEDGER_TEST_POSTGRES_URL`` is unusable, and when
        nothing is available under CI.
        """
        if not self.attempted:
            self.attempted = True
            try:
                self.server = self.provision()
            except PostgresUnavailable as exc:
                self.reason = str(exc)
                if in_ci():
                    pytest.exit(
                        "\n" + "!" * 78 + "\nPostgreSQL is REQUIRED under CI=true and none is "
                        f"available:\n{self.reason}\n{HOW_TO_FIX}\n" + "!" * 78,
                        returncode=CI_EXIT_CODE,
                    )
        return self.server

    def skip_reason(self) -> str:
        """The reason given to each skipped PostgreSQL test, on one line."""
        causes = "; ".join(line.strip(" -") for line in self.reason.splitlines() if line.strip())
        return f"PostgreSQL UNAVAILABLE, test SKIPPED: {causes}"

    def provision(self) -> PostgresServer:
        """Try the sources in order; raise ``PostgresUnavailable`` listing every failure."""
        explicit = os.environ.get(ENV_URL, "").strip()
        if explicit:
            return self.from_explicit_url(explicit)
        failures: list[str] = []
        for attempt in (self.from_probe, self.from_throwaway_cluster):
            try:
                return attempt()
            except PostgresUnavailable as exc:
                failures.append(str(exc))
        raise PostgresUnavailable("\n".join(f"  - {failure}" for failure in failures))

    @staticmethod
    def from_explicit_url(url: str) -> PostgresServer:
        """(a) The server the developer named; unusable means abort, not fall through."""
        try:
            return prepared(PostgresServer(libpq_url(url), f"{ENV_URL}={redact(url)}"))
        except psycopg.Error as exc:
            pytest.exit(
                f"{ENV_URL} is set but unusable ({redact(url)}): {first_line(exc)}",
                returncode=CI_EXIT_CODE,
            )

    @staticmethod
    def from_probe() -> PostgresServer:
        """(b) A local server with trust auth on the usual (or overridden) port."""
        port = int(os.environ.get(ENV_PROBE_PORT, "") or DEFAULT_PROBE_PORT)
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        try:
            return prepared(PostgresServer(url, f"local server at 127.0.0.1:{port}"))
        except psycopg.Error as exc:
            raise PostgresUnavailable(f"no usable server at {url}: {first_line(exc)}") from exc

    def from_throwaway_cluster(self) -> PostgresServer:
        """(c) initdb + pg_ctl into a temporary directory."""
        bindir = find_pg_bindir()
        if bindir is None:
            raise PostgresUnavailable(
                "initdb/pg_ctl not found on PATH or /usr/lib/postgresql/*/bin"
            )
        try:
            self.cluster = cluster = ThrowawayCluster(bindir)
            cluster.init()
            cluster.start()
            source = (
                f"throwaway cluster at 127.0.0.1:{cluster.port} "
                f"(initdb from {bindir}, data in {cluster.root})"
            )
            return prepared(PostgresServer(cluster.admin_url, source))
        except (PostgresUnavailable, psycopg.Error, OSError, subprocess.SubprocessError) as exc:
            self.close()
            raise PostgresUnavailable(f"throwaway cluster failed: {exc}") from exc

    def close(self) -> None:
        """Stop and delete the throwaway cluster, if one was made."""
        if self.cluster is not None:
            self.cluster.destroy()
            self.cluster = None


PROVIDER_KEY = pytest.StashKey[PostgresProvider]()


def provider_of(config: pytest.Config) -> PostgresProvider:
    """The session's provider."""
    return config.stash[PROVIDER_KEY]


def needs_postgres(item: pytest.Item) -> bool:
    """Whether ``item`` needs PostgreSQL: marked ``postgres`` or using a PostgreSQL fixture."""
    fixturenames = getattr(item, "fixturenames", ())
    return item.get_closest_marker("postgres") is not None or bool(
        POSTGRES_FIXTURES.intersection(fixturenames)
    )


# --------------------------------------------------------------------------------------------
# Hooks
# --------------------------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``postgres`` marker (also in pyproject) and create the provider."""
    if not any(line.startswith("postgres:") for line in config.getini("markers")):
        config.addinivalue_line("markers", POSTGRES_MARKER_LINE)
    config.stash[PROVIDER_KEY] = PostgresProvider()


def pytest_unconfigure(config: pytest.Config) -> None:
    """Tear down a throwaway cluster at the very end of the run."""
    provider = config.stash.get(PROVIDER_KEY, None)
    if provider is not None:
        provider.close()


def pytest_report_header(config: pytest.Config) -> str:
    """Say how PostgreSQL will be found (it is provisioned after collection, only if needed)."""
    explicit = os.environ.get(ENV_URL, "").strip()
    if explicit:
        plan = f"{ENV_URL}={redact(explicit)}"
    else:
        port = os.environ.get(ENV_PROBE_PORT, "") or DEFAULT_PROBE_PORT
        bindir = find_pg_bindir()
        plan = f"probe 127.0.0.1:{port}, then " + (
            f"throwaway cluster ({bindir})" if bindir else "no initdb found"
        )
    return f"postgres: on demand; {plan}; CI={'true' if in_ci() else 'false'}"


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> Iterator[None]:
    """Mark PostgreSQL users before ``-m`` filtering; provision (or skip) after it."""
    for item in items:
        if needs_postgres(item) and item.get_closest_marker("postgres") is None:
            item.add_marker(pytest.mark.postgres)
    yield  # the other implementations, including -k/-m deselection, run here
    wanted = [item for item in items if item.get_closest_marker("postgres") is not None]
    if not wanted or config.option.collectonly:
        return
    provider = provider_of(config)
    if provider.get() is None:
        skip = pytest.mark.skip(reason=provider.skip_reason())
        for item in wanted:
            item.add_marker(skip)
        provider.skipped = len(wanted)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """In a pytest-xdist worker: tell the controller how PostgreSQL was found (or not)."""
    workeroutput = getattr(session.config, "workeroutput", None)
    provider = session.config.stash.get(PROVIDER_KEY, None)
    if workeroutput is None or provider is None or not provider.attempted:
        return
    workeroutput["ledger_postgres"] = {
        "source": provider.server.source if provider.server is not None else None,
        "reason": provider.reason,
        "skipped": provider.skipped,
    }


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    """In the pytest-xdist controller: gather what each worker found, for the summary."""
    found = getattr(node, "workeroutput", {}).get("ledger_postgres")
    config = getattr(node, "config", None)
    if found is None or config is None:
        return
    provider = provider_of(config)
    provider.attempted = True
    provider.skipped += found["skipped"]
    if found["source"] is not None and provider.server is None:
        provider.server = PostgresServer("", found["source"])
    elif found["source"] is None:
        provider.reason = found["reason"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line saying where PostgreSQL came from, or a loud banner if its tests were skipped."""
    provider = terminalreporter.config.stash.get(PROVIDER_KEY, None)
    if provider is None or not provider.attempted:
        return
    if provider.skipped:
        provider.server = None  # any worker that skipped makes the run a skipping one
    if provider.server is not None:
        terminalreporter.write_line(f"PostgreSQL for tests: {provider.server.source}")
        return
    banner = f"{provider.skipped} PostgreSQL tests were SKIPPED"
    terminalreporter.write_sep("!", banner, red=True, bold=True)
    terminalreporter.write_line(f"Why:\n{provider.reason}", red=True, bold=True)
    terminalreporter.write_line(HOW_TO_FIX, red=True, bold=True)
    terminalreporter.write_sep("!", banner, red=True, bold=True)


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server(pytestconfig: pytest.Config) -> PostgresServer:
    """The provisioned server; skips (loudly) if there is none outside CI."""
    provider = provider_of(pytestconfig)
    server = provider.get()
    if server is None:
        pytest.skip(provider.skip_reason())
    return server


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """URL of the ``ledger_test`` database, e.g. ``postgresql://postgres@127.0.0.1:5432/ledger_test``."""
    return postgres_server.database_url()


@pytest.fixture
def fresh_postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A new empty schema ``t_<12 hex>`` in ``ledger_test`` (``?schema=t_xxx``); dropped after."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    url = postgres_server.database_url()
    with connect(url) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    yield postgres_server.database_url(schema)
    # Best effort: a leaked connection holding a lock must not hang the suite, hence lock_timeout.
    with contextlib.suppress(psycopg.Error), connect(url) as conn:
        conn.execute("SET lock_timeout = '10s'")
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """``sqlite:////abs/tmp/path/ledger.db``: a new SQLite file per test (SQLAlchemy style)."""
    return f"sqlite:///{(tmp_path / 'ledger.db').resolve().as_posix()}"


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest) -> str:
    """Each backend in turn: ``sqlite_url`` or ``fresh_postgres_url``."""
    fixture = "sqlite_url" if request.param == "sqlite" else "fresh_postgres_url"
    return str(request.getfixturevalue(fixture))
