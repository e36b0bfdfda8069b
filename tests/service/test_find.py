"""Find (GET /environments?…) and package search (GET /packages?…): only what the caller
may read, the current version's packages however current moved, pages that neither
repeat nor skip, a channel index cached per channel that never hangs a request."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from envyard.service.db import Database
from tests.servers import ENVYARD, Service
from tests.service.conftest import api, build


def found(c: httpx.Client, **params: Any) -> list[str]:
    """Every page of a find, as NAMESPACE/NAME."""
    rows, cursor = [], None
    while True:
        r = c.get("/api/v1/environments", params={**params, **(
            {"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        rows += [f"{e['namespace']}/{e['name']}" for e in r.json()["environments"]]
        cursor = r.json()["next"]
        if cursor is None:
            return rows


def service_db(service: Service) -> Database:
    return Database(service.database_url or f"sqlite:///{service.root / 'envyard.db'}")


def test_find_by_package_reads_only_readable_current_versions(service: Service) -> None:
    admin = service.token("*=admin")
    viewer = service.token("finda=viewer")
    with api(service, admin) as c:
        build(c, "finda/one", "toolz")
        build(c, "finda/one", "toolz, msgpack-python")
        build(c, "findb/two", "toolz, msgpack-python")  # matches, but not viewer's
        build(c, "finda/gone", "msgpack-python")
        assert c.delete("/api/v1/environments/finda/gone").status_code == 200
        assert found(c, search="find", package="msgpack-python") == ["finda/one", "findb/two"]
        # several packages: each must be in the current version
        assert found(c, search="find", package=["toolz", "msgpack-python"]) == [
            "finda/one", "findb/two"]
        assert found(c, search="find", package=["toolz", "pyyaml"]) == []
    with api(service, viewer) as v:
        assert found(v, package="msgpack-python") == ["finda/one"]
        assert found(v, package="MSGPACK_Python") == ["finda/one"]  # as the lock names it
        row = v.get("/api/v1/environments", params={"package": "toolz"}).json()[
            "environments"][0]
        assert (row["current_version"], row["current_state"], row["latest_version"],
                row["dask"]) == (2, "ready", 2, "unchecked")
        assert dt.datetime.fromisoformat(row["updated_at"]).tzinfo is not None
        assert found(v) == ["finda/one"]  # nothing of findb, and not the deleted one
    with api(service, service.token("nothing=viewer")) as nobody:
        assert found(nobody, package="toolz") == []
    with api(service, admin) as c:
        r = c.post("/api/v1/environments/finda/one/rollback", json={"version": 1})
        assert r.status_code == 200, r.text
    with api(service, viewer) as v:
        assert found(v, package="msgpack-python") == []  # v1 has toolz alone
        assert found(v, package="toolz") == ["finda/one"]
        row = v.get("/api/v1/environments", params={"package": "toolz"}).json()[
            "environments"][0]
        assert (row["current_version"], row["latest_version"]) == (1, 2)
    with api(service, admin) as c:
        build(c, "finda/one", "toolz, pyyaml")  # a new version becomes current
    with api(service, viewer) as v:
        assert found(v, package="pyyaml") == ["finda/one"]
        assert found(v, package="msgpack-python") == []
        assert found(v, package="toolz", state="ready") == ["finda/one"]
        assert found(v, state="failed") == []


def _environments(db: Database, namespace: str, names: list[str], **fields: Any) -> None:
    from envyard.service.models import Environment, Namespace

    with db.session(write=True) as s:
        ns = Namespace(name=namespace)
        s.add(ns)
        s.flush()
        s.add_all(Environment(namespace_id=ns.id, name=n, **fields) for n in names)


def test_pages_yield_each_environment_once(service: Service) -> None:
    """Keyset pages: every environment exactly once, in the server's order, even when
    environments are deleted and added between pages; a forged cursor is refused."""
    names = [f"e{i:02d}" for i in range(20)] + ["A.b", "a-b", "a_b", "aB", "Zz", "z"]
    db = service_db(service)
    try:
        _environments(db, "pager", names)
        _environments(db, "pagerother", ["e00"])  # not readable
        with api(service, service.token("pager=viewer")) as v:
            seen: list[str] = []
            cursor = None
            while True:
                page = v.get("/api/v1/environments", params={
                    "limit": 4, **({"cursor": cursor} if cursor else {})}).json()
                assert len(page["environments"]) <= 4
                seen += [e["name"] for e in page["environments"]]
                if len(seen) == 8:  # between pages: one not seen yet goes, one comes
                    gone = next(n for n in names if n not in seen)
                    assert v.delete(f"/api/v1/environments/pager/{gone}").status_code == 403
                    with api(service, service.token("pager=developer")) as dev:
                        assert dev.delete(
                            f"/api/v1/environments/pager/{gone}").status_code == 200
                    from sqlalchemy import select

                    from envyard.service.models import Environment, Namespace

                    with db.session(write=True) as s:
                        ns_id = s.scalar(select(Namespace.id).where(
                            Namespace.name == "pager"))
                        s.add(Environment(namespace_id=ns_id, name="zzz-late"))
                cursor = page["next"]
                if cursor is None:
                    break
            expected = (set(names) - {gone}) | {"zzz-late"}
            assert sorted(seen) == sorted(expected) and len(seen) == len(expected)
            assert seen == [e["name"] for e in v.get("/api/v1/environments", params={
                "limit": 500}).json()["environments"]]  # the same order as one page
            for forged in ("nope", "WyJhIl0=", "WyIuLiIsICJ4Il0="):  # ["a"], ["..","x"]
                r = v.get("/api/v1/environments", params={"cursor": forged})
                assert r.status_code == 422 and "cursor" in r.text, r.text
    finally:
        db.engine.dispose()


def test_state_dask_and_search_filters(empty_db: Database) -> None:
    """The newest version's state (building = any build stage), the current version's
    Dask verdict as each backend reads the JSON report, and search over name and
    description, in any case, with LIKE's wildcards taken literally. (On the database
    alone: a running service would build the queued rows.)"""
    from envyard.service.auth import Principal
    from envyard.service.db import migrate
    from envyard.service.find import Filters, find_environments
    from envyard.service.models import Environment, Namespace, Role, Version

    migrate(empty_db.engine)
    report = {"applies": True, "ok": True, "lockstep": None, "verdicts": []}
    cases = {  # name: (current version's report, newest version's state, description)
        "ok": (report, "ready", "Geo tools"),
        "bad": ({**report, "ok": False}, "failed", "50% off_line"),
        "nodist": ({"applies": False, "ok": True, "lockstep": None, "verdicts": []},
                   "solving", None),
        "nopins": (None, "queued", None),
    }
    with empty_db.session(write=True) as s:
        for namespace in ("filters", "other"):
            ns = Namespace(name=namespace)
            s.add(ns)
            s.flush()
            for name, (dask, newest, description) in cases.items():
                env = Environment(namespace_id=ns.id, name=name, current_version=1,
                                  version_counter=2, description=description)
                s.add(env)
                s.flush()
                s.add_all([Version(environment_id=env.id, number=1, kind="spec",
                                   state="ready", timings={}, dask_report=dask,
                                   prefix_bytes=len(name) * 1000),
                           Version(environment_id=env.id, number=2, kind="spec",
                                   state=newest, timings={}, submitted_by=f"by {name}")])
    who = Principal("t", {"filters": Role.viewer})

    def names(**filters: Any) -> list[str]:
        with empty_db.session() as s:
            rows = find_environments(s, who, Filters(**filters)).rows
        assert {r["namespace"] for r in rows} <= {"filters"}
        return [r["name"] for r in rows]

    from envyard.service.find import dask_verdict

    with empty_db.session() as s:
        rows = find_environments(s, who, Filters()).rows
    assert {r["name"]: r["dask"] for r in rows} == {
        "ok": "ok", "bad": "mismatch", "nodist": "none", "nopins": "unchecked"}
    # the history's verdict of one report (Python) reads it as the SQL does
    assert {name: dask_verdict(case[0]) for name, case in cases.items()} == \
        {r["name"]: r["dask"] for r in rows}
    # the current version's size, and who made the newest version (the list shows both)
    assert {r["name"]: (r["current_bytes"], r["updated_by"]) for r in rows} == {
        name: (len(name) * 1000, f"by {name}") for name in cases}
    for verdict, expected in (("ok", ["ok"]), ("mismatch", ["bad"]),
                              ("none", ["nodist"]), ("unchecked", ["nopins"])):
        assert names(dask=verdict) == expected
    assert names(state="building") == ["nodist", "nopins"]
    assert names(state="failed") == ["bad"]
    assert names(state="ready") == ["ok"]
    assert names(search="GEO") == ["ok"]
    assert names(search="filters/NO") == ["nodist", "nopins"]
    assert names(search="50%") == ["bad"] and names(search="5%") == []
    assert names(search="ff_") == ["bad"] and names(search="of_") == []


def test_find_refuses_malformed_filters(service: Service) -> None:
    with api(service, service.token("team=viewer")) as v:
        for bad in ({"state": "done"}, {"dask": "maybe"}, {"package": "a b"},
                    {"package": "x" * 201}, {"package": [f"p{i}" for i in range(21)]},
                    {"limit": 0}, {"limit": 501}, {"search": "a\x00b"},
                    {"cursor": "x" * 401}):
            r = v.get("/api/v1/environments", params=bad)
            assert r.status_code == 422, (bad, r.text)
    with api(service, None) as anonymous:
        assert anonymous.get("/api/v1/environments").status_code == 401


def test_cli_find_and_search(service: Service) -> None:
    """envyard find and envyard search: readable in 80 columns, and --json."""
    env = {**os.environ, "ENVYARD_SERVER": service.url,
           "ENVYARD_TOKEN": service.token("finda=viewer")}

    def run(*args: str) -> str:
        done = subprocess.run([ENVYARD, *args], env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        if "--json" not in args:
            assert all(len(line) <= 80 for line in done.stdout.splitlines()), done.stdout
        return done.stdout

    with api(service, service.token("*=admin")) as c:
        if not found(c, search="finda/one"):
            build(c, "finda/one", "toolz")
        c.put("/api/v1/environments/finda/one/description",
              json={"description": "A long description " * 10})
    out = run("find", "--package", "toolz")
    assert out.splitlines()[0].split() == ["ENVIRONMENT", "CURRENT", "NEWEST", "DASK",
                                           "UPDATED"]
    assert out.splitlines()[1].startswith("finda/one ") and "A long description" in out
    data = json.loads(run("find", "--package", "toolz", "--json"))
    assert [e["name"] for e in data["environments"]] == ["one"] and not data["more"]
    out = run("search", "dask")
    assert out.splitlines()[0].split()[:3] == ["dask", "2026.1.2", "(2025.12.0)"], out
    data = json.loads(run("search", "dask", "--json"))
    assert data["packages"][0]["versions"] == ["2026.1.2", "2025.12.0"]


def test_the_migration_fills_the_index_from_versions(empty_db: Database) -> None:
    """Versions published before the index have their packages indexed by 0016, named as
    a lock names them (conda lowercased, pip canonicalised), each name once."""
    from sqlalchemy import text

    from envyard.service.db import migrate

    migrate(empty_db.engine, "0012")
    packages = [{"name": "Dask", "version": "1", "manager": "conda"},
                {"name": "dask", "version": "1", "manager": "conda"},
                {"name": "Dask_Gateway", "version": "1", "manager": "pip"},
                {"name": "x" * 300, "version": "1", "manager": "conda"}]
    with empty_db.engine.begin() as conn:
        conn.execute(text("INSERT INTO namespaces (name, created_at) "
                          "VALUES ('old', CURRENT_TIMESTAMP)"))
        conn.execute(text("INSERT INTO environments (namespace_id, name, current_version, "
                          "version_counter, created_at) VALUES (1, 'env', 2, 2, "
                          "CURRENT_TIMESTAMP)"))
        for number, pkgs in ((1, packages), (2, None)):
            conn.execute(text(
                "INSERT INTO versions (environment_id, number, kind, state, timings, held, "
                "packages, created_at) VALUES (1, :n, 'spec', 'ready', '{}', false, :p, "
                "CURRENT_TIMESTAMP)"), {"n": number, "p": json.dumps(pkgs)})
    migrate(empty_db.engine)
    with empty_db.engine.connect() as conn:
        rows = conn.execute(text("SELECT v.number, p.name FROM version_packages p JOIN "
                                 "versions v ON v.id = p.version_id ORDER BY p.name")).all()
    assert [tuple(r) for r in rows] == [(1, "dask"), (1, "dask-gateway")]


# ---- package search ----------------------------------------------------------------


def _tiny_channel(path: Path, records: dict[str, list[str]]) -> Path:
    """A noarch channel of metadata only: name -> versions."""
    import hashlib

    packages = {}
    for name, versions in records.items():
        for version in versions:
            digest = hashlib.sha256(f"{name}{version}".encode()).hexdigest()
            packages[f"{name}-{version}-0.conda"] = {
                "name": name, "version": version, "build": "0", "build_number": 0,
                "depends": [], "subdir": "noarch", "md5": digest[:32], "sha256": digest,
                "size": 1}
    for subdir in ("noarch", "linux-64", "osx-arm64"):
        (path / subdir).mkdir(parents=True, exist_ok=True)
        body = {"info": {"subdir": subdir}, "packages": {},
                "packages.conda": packages if subdir == "noarch" else {}}
        (path / subdir / "repodata.json").write_text(json.dumps(body))
    return path


@pytest.fixture
def silent_channel() -> Iterator[str]:
    """A channel URL on loopback that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/silent"
    server.close()
    for conn in held:
        conn.close()


def search_in_process(tmp_path: Path, channels: list[str], queries: list[dict[str, Any]],
                      token: bool = True, between: Any = None, **settings: Any
                      ) -> list[httpx.Response]:
    """Start the app in this process with ``channels`` and answer ``queries`` in turn
    (``between(i)`` runs before query ``i``, if given)."""
    from envyard.service.app import create_app
    from envyard.service.auth import create_token
    from envyard.service.models import Role
    from envyard.service.settings import Settings

    app = create_app(Settings(root=tmp_path / "volume", default_channels=channels, **settings))

    async def call() -> list[httpx.Response]:
        async with app.router.lifespan_context(app):
            with app.state.db.session(write=True) as s:
                secret = create_token(s, name="t", roles={"team": Role.viewer})
            headers = {"Authorization": f"Bearer {secret}"} if token else {}
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url="http://t", headers=headers,
                                         timeout=60) as c:
                out = []
                for i, q in enumerate(queries):
                    if between is not None:
                        await asyncio.to_thread(between, i)
                    out.append(await c.get("/api/v1/packages", params=q))
                return out

    return asyncio.run(call())


def test_package_search_over_the_demo_channel(tmp_path: Path, channel: Path) -> None:
    answers = search_in_process(tmp_path, [str(channel)], [
        {"search": "da"}, {"search": "DASK", "limit": 2}, {"search": "zzz"},
        {"search": "py", "limit": 200}, {"search": "py", "platform": "osx-arm64",
                                         "limit": 200},
        {"search": "da", "platform": "nope"}, {"search": "a b"}, {"search": ""}])
    first = answers[0].json()
    assert first["platform"] and first["packages"][0] == {
        "name": "dask", "channel": str(channel), "latest": "2026.1.2",
        "versions": ["2026.1.2", "2025.12.0"]}
    names = [p["name"] for p in first["packages"]]
    starting = [n for n in names if n.startswith("da")]
    assert names[:len(starting)] == starting and all("da" in n for n in names)
    assert len(names) > len(starting)  # then the ones containing it
    assert [p["name"] for p in answers[1].json()["packages"]] == ["dask", "dask-gateway"]
    assert answers[2].json()["packages"] == []
    linux = {p["name"] for p in answers[3].json()["packages"]}
    mac = {p["name"] for p in answers[4].json()["packages"]}
    assert "python" in linux and "python" not in mac  # built for linux-64 only
    assert "python-dateutil" in linux & mac  # noarch
    assert [a.status_code for a in answers[5:]] == [422, 422, 422]


def test_package_search_needs_a_caller(tmp_path: Path, channel: Path) -> None:
    answer, = search_in_process(tmp_path, [str(channel)], [{"search": "da"}], token=False)
    assert answer.status_code == 401


def test_package_search_takes_a_name_from_the_first_channel_and_caches_each(
        tmp_path: Path, channel: Path) -> None:
    """Channels in priority order, as a build reads them; each channel's index is kept
    for package_index_seconds (a name added meanwhile appears after it, not before)."""
    tiny = _tiny_channel(tmp_path / "tiny", {"dask": ["9999.0", "1.0"], "zdask": ["0.1"]})

    def between(i: int) -> None:
        if i == 1:
            _tiny_channel(tiny, {"dask": ["9999.0", "1.0"], "zdask": ["0.1"],
                                 "dask-new": ["1.0"]})

    demo_first, again = search_in_process(
        tmp_path / "a", [str(channel), str(tiny)], [{"search": "dask"}, {"search": "dask"}],
        between=between)
    rows = {p["name"]: p for p in demo_first.json()["packages"]}
    assert [p["name"] for p in demo_first.json()["packages"]] == [
        "dask", "dask-gateway", "zdask"]
    assert (rows["dask"]["channel"], rows["dask"]["latest"]) == (str(channel), "2026.1.2")
    assert rows["zdask"]["channel"] == str(tiny)
    assert "dask-new" not in {p["name"] for p in again.json()["packages"]}  # cached
    tiny_first, = search_in_process(tmp_path / "b", [str(tiny), str(channel)],
                                    [{"search": "dask"}])
    assert tiny_first.json()["packages"][0] == {
        "name": "dask", "channel": str(tiny), "latest": "9999.0", "versions": ["9999.0", "1.0"]}

    fresh = _tiny_channel(tmp_path / "fresh", {"dask": ["1.0"]})

    def refreshed(i: int) -> None:
        if i == 1:
            _tiny_channel(fresh, {"dask": ["1.0"], "dask-new": ["1.0"]})
            time.sleep(1.5)  # past the index's age: answered stale, read again meanwhile
        if i == 2:
            time.sleep(3)

    answers = search_in_process(tmp_path / "c", [str(fresh)], [{"search": "new"}] * 3,
                                between=refreshed, package_index_seconds=1)
    assert [[p["name"] for p in a.json()["packages"]] for a in answers] == [
        [], [], ["dask-new"]]


def test_an_unreachable_channel_is_a_503_not_a_hang(tmp_path: Path, channel: Path,
                                                    silent_channel: str) -> None:
    start = time.monotonic()
    answer, = search_in_process(tmp_path, [str(channel), silent_channel],
                                [{"search": "dask"}], package_index_timeout=2)
    assert time.monotonic() - start < 30
    assert answer.status_code == 503, answer.text
    assert silent_channel in answer.json()["detail"] and answer.headers["retry-after"]


def test_a_slow_channel_answers_503_while_its_read_goes_on(
        tmp_path: Path, silent_channel: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A request waits WAIT seconds for a read, not the read's whole limit."""
    from envyard.service import package_search

    monkeypatch.setattr(package_search, "WAIT", 1.0)
    start = time.monotonic()
    answer, = search_in_process(tmp_path, [silent_channel], [{"search": "dask"}],
                                package_index_timeout=60)
    assert time.monotonic() - start < 20
    assert answer.status_code == 503 and "retry shortly" in answer.json()["detail"]
    assert answer.headers["retry-after"]
