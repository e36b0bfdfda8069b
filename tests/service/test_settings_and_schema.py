"""One configuration (variables over a YAML file) and migrations that match the models."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from service.settings import Settings


def test_yaml_file_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "envyard.yml"
    config.write_text("channels: [conda-forge, bioconda]\nbuild_concurrency: 4\nport: 9000\n")
    monkeypatch.setenv("ENVYARD_CONFIG", str(config))
    monkeypatch.setenv("ENVYARD_PORT", "9100")
    settings = Settings()
    assert settings.channels == ["conda-forge", "bioconda"]
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


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migrations_create_exactly_the_models(backend: str, tmp_path: Path,
                                              request: pytest.FixtureRequest) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from service.db import Database, migrate
    from service.models import Base

    url = request.getfixturevalue("postgres").new_database() if backend == "postgresql" \
        else f"sqlite:///{tmp_path / 'db.sqlite'}"
    db = Database(url)
    migrate(db.engine)
    migrate(db.engine)  # applying again is a no-op
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    db.engine.dispose()
    assert diff == []
