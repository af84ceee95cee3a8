"""Settings: a database URL becomes the event store's own settings, or a clear refusal."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.config import DEFAULT_DATABASE_URL, ConfigurationError, Settings, store_environment


def test_an_absolute_sqlite_url_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "data" / "ledger.db"

    environment = store_environment("sqlite:///" + str(path))

    assert environment["PERSISTENCE_MODULE"] == "eventsourcing.sqlite"
    assert environment["SQLITE_DBNAME"] == str(path)
    assert path.parent.is_dir()


def test_a_relative_sqlite_url_names_a_file_relative_to_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    assert store_environment("sqlite:///var/ledger.db")["SQLITE_DBNAME"] == "var/ledger.db"


def test_a_postgres_url_gives_every_connection_setting() -> None:
    environment = store_environment(
        "postgresql://ledger:p%40ss@db.example:6543/inventory?schema=books&pool_size=4")

    assert environment == {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": "inventory",
        "POSTGRES_HOST": "db.example",
        "POSTGRES_PORT": "6543",
        "POSTGRES_USER": "ledger",
        "POSTGRES_PASSWORD": "p@ss",
        "POSTGRES_POOL_SIZE": "4",
        "POSTGRES_MAX_OVERFLOW": "10",
        "POSTGRES_LOCK_TIMEOUT": "10",
        "POSTGRES_CONNECT_TIMEOUT": "10",
        "POSTGRES_SCHEMA": "books",
        "CREATE_TABLE": "true",
    }
    assert "POSTGRES_ENABLE_DB_FUNCTIONS" not in environment


def test_a_locked_down_service_does_not_create_the_stores_tables() -> None:
    environment = store_environment("postgresql://svc@db/inventory", create_tables=False)

    assert environment["CREATE_TABLE"] == "false"


@pytest.mark.parametrize("url", ["mysql://host/db", "sqlite:///", "postgresql://host",
                                 "postgresql:///db"])
def test_an_unusable_database_url_is_refused(url: str) -> None:
    with pytest.raises(ConfigurationError):
        store_environment(url)


def test_settings_come_from_the_environment_with_defaults() -> None:
    assert Settings.from_environ({}) == Settings(database_url=DEFAULT_DATABASE_URL)
    settings = Settings.from_environ({
        "LEDGER_DATABASE_URL": "postgresql://h/db", "LEDGER_API_KEYS": "k",
        "LEDGER_REQUEST_BODY_BYTES_MAX": "2048"})
    assert (settings.database_url, settings.api_keys, settings.request_body_bytes_max) == (
        "postgresql://h/db", "k", 2048)


def test_group_commit_waits_half_a_millisecond_for_more_commands_unless_told_otherwise() -> None:
    from ledger.config import group_commit_settings

    default = group_commit_settings(Settings.from_environ({}))
    chosen = group_commit_settings(Settings.from_environ({"LEDGER_GROUP_COMMIT_WINDOW_MS": "2"}))

    assert default is not None and default.window_seconds == pytest.approx(0.0005)
    assert chosen is not None and chosen.window_seconds == pytest.approx(0.002)
    assert group_commit_settings(Settings.from_environ({"LEDGER_GROUP_COMMIT": "off"})) is None
    with pytest.raises(ConfigurationError):
        group_commit_settings(Settings.from_environ({"LEDGER_GROUP_COMMIT_WINDOW_MS": "101"}))


def test_a_projection_worker_lets_events_gather_for_25_ms_unless_told_otherwise() -> None:
    from ledger.config import project_gather_seconds

    assert project_gather_seconds(Settings.from_environ({})) == pytest.approx(0.025)
    assert project_gather_seconds(
        Settings.from_environ({"LEDGER_PROJECT_GATHER_MS": "0"})) == 0
    with pytest.raises(ConfigurationError):
        project_gather_seconds(Settings.from_environ({"LEDGER_PROJECT_GATHER_MS": "1001"}))


def test_a_rebuild_folds_in_one_process_per_core_up_to_three_unless_told_otherwise() -> None:
    from ledger.config import rebuild_processes

    default = Settings.from_environ({})
    assert rebuild_processes(default, cores=2) == 2
    assert rebuild_processes(default, cores=1) == 1
    assert rebuild_processes(default, cores=32) == 8
    assert rebuild_processes(Settings.from_environ({"LEDGER_REBUILD_PROCESSES": "1"}),
                             cores=8) == 1
    assert rebuild_processes(Settings.from_environ({"LEDGER_REBUILD_PROCESSES": "6"}),
                             cores=2) == 6
    for wrong in ("-1", "17"):
        with pytest.raises(ConfigurationError):
            rebuild_processes(Settings.from_environ({"LEDGER_REBUILD_PROCESSES": wrong}))
