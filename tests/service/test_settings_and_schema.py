"""One configuration (variables over a YAML file) and migrations that match the models."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from envyard.builder.errors import ConfigError
from envyard.service.db import Database
from envyard.service.settings import Settings, load_settings


def test_yaml_file_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "envyard.yml"
    config.write_text("default_channels: [conda-forge, bioconda]\nbuild_concurrency: 4\n"
                      "port: 9000\n")
    monkeypatch.setenv("ENVYARD_CONFIG", str(config))
    monkeypatch.setenv("ENVYARD_PORT", "9100")
    settings = Settings()
    assert settings.default_channels == ["conda-forge", "bioconda"]
    assert settings.build_concurrency == 4
    assert settings.port == 9100  # the variable wins over the file
    assert settings.db_url.startswith("sqlite:///") and settings.db_url.endswith("envyard.db")


def test_bad_settings_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "envyard.yml"
    config.write_text("build_concurency: 4\n")  # misspelt
    monkeypatch.setenv("ENVYARD_CONFIG", str(config))
    with pytest.raises(ValidationError, match="build_concurency"):
        Settings()
    monkeypatch.delenv("ENVYARD_CONFIG")
    monkeypatch.setenv("ENVYARD_ANONYMOUS", "write")
    with pytest.raises(ValidationError, match="anonymous"):
        Settings()



def test_a_list_setting_may_be_a_plain_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: ENVYARD_CHANNELS=/path was "internal error ... please report it"."""
    monkeypatch.setenv("ENVYARD_DEFAULT_CHANNELS", "/srv/channel, conda-forge")
    monkeypatch.setenv("ENVYARD_TRUSTED_PROXIES", '["127.0.0.1"]')
    s = load_settings()
    assert s.default_channels == ["/srv/channel", "conda-forge"]
    assert s.trusted_proxies == ["127.0.0.1"]


def test_the_old_channels_setting_says_its_new_name_and_meaning(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``channels`` used to replace every spec's channels; it is now only the default, so
    a site that set it is told, not silently switched to the specs' channels."""
    monkeypatch.setenv("ENVYARD_CHANNELS", '["conda-forge"]')
    with pytest.raises(ConfigError, match="ENVYARD_CHANNELS is now default_channels"):
        load_settings()
    monkeypatch.delenv("ENVYARD_CHANNELS")
    config = tmp_path / "envyard.yml"
    config.write_text("channels: [conda-forge]\n")
    monkeypatch.setenv("ENVYARD_CONFIG", str(config))
    with pytest.raises(ConfigError, match="channels is now default_channels"):
        load_settings()


def test_a_bad_setting_names_itself_and_exits_3(tmp_path: Path) -> None:
    import os
    import subprocess

    from tests.servers import ENVYARD

    for name, value in (("ENVYARD_PORT", "eighty"), ("ENVYARD_KUBERNETES", "{not json"),
                        ("ENVYARD_ALLOWED_CHANNELS", "[broken")):
        env = {**os.environ, "ENVYARD_ROOT": str(tmp_path / "v"), name: value}
        done = subprocess.run([ENVYARD, "serve"], env=env, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 3, done.stderr
        assert name in done.stderr and "internal error" not in done.stderr, done.stderr
    with pytest.raises(ConfigError, match="ENVYARD_ANONYMOUS"):
        load_settings(anonymous="write")
    with pytest.raises(ConfigError, match="hub_pasword") as err:  # misspelt: not echoed
        load_settings(hub_pasword="s3cr3t")
    assert "s3cr3t" not in str(err.value)


def test_migrations_create_exactly_the_models(empty_db: Database) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from envyard.service.db import migrate
    from envyard.service.models import Base

    migrate(empty_db.engine)
    migrate(empty_db.engine)  # applying again is a no-op
    with empty_db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_old_namespace_defaults_become_unset_overrides(empty_db: Database) -> None:
    """Before 0011 a namespace always held Dask follow, Dask policy and images (false,
    'warn', false: the defaults); after it, those read as "not set", so a policy says the
    service's default applies, while a value a namespace admin chose is kept."""
    from sqlalchemy import text

    from envyard.service.db import migrate

    migrate(empty_db.engine, "0010")
    with empty_db.engine.begin() as conn:
        conn.execute(text("INSERT INTO namespaces (name, dask_policy, dask_follow, images, "
                          "created_at) VALUES ('plain', 'warn', false, false, "
                          "CURRENT_TIMESTAMP), ('chosen', 'block', true, true, "
                          "CURRENT_TIMESTAMP)"))
    migrate(empty_db.engine)
    with empty_db.engine.connect() as conn:
        rows = dict((r[0], tuple(r[1:])) for r in conn.execute(text(
            "SELECT name, dask_policy, dask_follow, images FROM namespaces")))
    assert rows == {"plain": (None, None, None), "chosen": ("block", True, True)}


def test_grouped_settings_and_their_old_names(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Image, hub and storage settings are groups (``image.registry``,
    ``ENVYARD_IMAGE__REGISTRY``); a setting under its old flat name is refused with its
    new one, never silently ignored (an upgraded service would have lost its registry)."""
    config = tmp_path / "envyard.yml"
    config.write_text("image:\n  registry: registry.example.org\nhub:\n  port: 9000\n")
    monkeypatch.setenv("ENVYARD_CONFIG", str(config))
    monkeypatch.setenv("ENVYARD_IMAGE__BASE", "registry.example.org/debian:12")
    monkeypatch.setenv("ENVYARD_STORAGE__BACKEND", "s3")
    monkeypatch.setenv("ENVYARD_STORAGE__BUCKET", "envs")
    s = load_settings(hub={"password": "given"})
    assert (s.image.registry, s.image.base) == ("registry.example.org",
                                                 "registry.example.org/debian:12")
    assert (s.hub.port, s.hub.password, s.hub.service_name) == (9000, "given", "envyard")
    assert (s.storage.backend, s.storage.bucket) == ("s3", "envs")

    monkeypatch.setenv("ENVYARD_IMAGE_REGISTRY_PASSWORD", "s3cr3t")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "ENVYARD_IMAGE_REGISTRY_PASSWORD is now image.registry_password " \
           "(ENVYARD_IMAGE__REGISTRY_PASSWORD)" in str(err.value)
    assert "s3cr3t" not in str(err.value)
    monkeypatch.delenv("ENVYARD_IMAGE_REGISTRY_PASSWORD")
    config.write_text("hub_grants: {'{user}': admin}\n")
    with pytest.raises(ConfigError, match=r"hub_grants is now hub\.grants"):
        load_settings()
    config.write_text("storage: s3\n")
    monkeypatch.delenv("ENVYARD_STORAGE__BACKEND")
    monkeypatch.delenv("ENVYARD_STORAGE__BUCKET")
    with pytest.raises(ConfigError, match=r"storage: s3 is now storage: \{backend: s3\}"):
        load_settings()


def test_a_populated_database_upgrades(empty_db: Database) -> None:
    """Found by review: on SQLite, 0010 and 0011 rebuild tables that others refer to, and
    with foreign keys on the drop of the old table failed as soon as a namespace had an
    environment or a version an artifact: an upgraded service did not start."""
    from sqlalchemy import text

    from envyard.service.db import migrate

    migrate(empty_db.engine, "0009")
    with empty_db.engine.begin() as conn:
        for statement in (
                "INSERT INTO namespaces (id, name, dask_policy, dask_follow, images, "
                "created_at) VALUES (1, 'team', 'warn', false, false, CURRENT_TIMESTAMP)",
                "INSERT INTO environments (id, namespace_id, name, current_version, "
                "version_counter, created_at) VALUES (1, 1, 'geo', 1, 1, "
                "CURRENT_TIMESTAMP)",
                "INSERT INTO versions (id, environment_id, number, kind, state, timings, "
                "held, created_at) VALUES (1, 1, 1, 'spec', 'ready', '{}', false, "
                "CURRENT_TIMESTAMP)",
                "INSERT INTO artifacts (version_id, kind, path, bytes) VALUES "
                "(1, 'log', 'builds/team/geo/1/build.log', 10)"):
            conn.execute(text(statement))
    migrate(empty_db.engine)
    with empty_db.session() as s:
        from envyard.service.models import Artifact, Environment, Version

        v = s.get(Version, 1)
        assert v is not None and v.state == "ready" and v.environment.name == "geo"
        assert [a.kind for a in s.query(Artifact)] == ["log"]
        assert s.get(Environment, 1).current_version == 1  # type: ignore[union-attr]
    if empty_db.engine.dialect.name == "sqlite":  # and the keys are enforced again
        with pytest.raises(Exception, match="FOREIGN KEY"), empty_db.engine.begin() as conn:
            conn.execute(text("INSERT INTO artifacts (version_id, kind, path) "
                              "VALUES (99, 'log', 'x')"))


def test_channel_secrets_in_settings_are_checked_at_start(tmp_path: Path) -> None:
    """Found by review: a password written into a mirror URL went into build logs, and a
    missing or malformed credentials file exited 10 ("bad spec") after saying it served."""
    import os
    import subprocess

    from tests.servers import ENVYARD

    bad = tmp_path / "creds.json"
    bad.write_text('{"repo.example.com": {"Basic": 1}}')
    for name, value, words in (
            ("ENVYARD_MIRRORS", '{"conda-forge": ["https://u:pw123@mirror.example/cf"]}',
             "a user name or password in its URL"),
            ("ENVYARD_CREDENTIALS_FILE", str(tmp_path / "missing.json"),
             "cannot read the credentials file"),
            ("ENVYARD_CREDENTIALS_FILE", str(bad), "expected one of"),
            ("ENVYARD_CREDENTIALS", '{"h": "x"}', "ENVYARD_CREDENTIALS")):
        env = {**os.environ, "ENVYARD_ROOT": str(tmp_path / "v"), name: value}
        done = subprocess.run([ENVYARD, "serve"], env=env, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 3, done.stderr
        assert words in done.stderr and "serving on" not in done.stderr, done.stderr
        assert "pw123" not in done.stderr
