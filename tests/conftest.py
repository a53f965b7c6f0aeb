"""One throwaway cluster per session and server version; a template database
built by the real migrations and function files; a fresh copy per test.
Modules under contract/ run twice: on a single server and through a proxy."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row

from pgcredit import CreditClient, migrate
from pgcredit.partitions import migrate_partitions
from pgcredit.tools import embedded
from support.db import (
    APP_USER, AUDITOR_USER, MONITOR_USER, PARTITIONS, TEMPLATE, Cluster, Proxy, ProxyConnection, Spares,
    _Postgresql, _server_versions, _server_versions_problem, new_proxy, plproxy_missing, private_server,
)
from support.failover import ABSENT_STANDBY, LOCAL

CONTRACT = Path(__file__).resolve().parent / "contract"


def pytest_addoption(parser):
    parser.addoption("--long", action="store_true",
                     help="long reliability runs: T1 16x2000 ops, T2 60 s, more property-test examples")


def pytest_configure(config):
    config.addinivalue_line("markers", "direct_only(reason): a contract test that cannot run through the "
                                       "proxy, and why (it is skipped there, visibly)")
    config.addinivalue_line("markers", "checker_self_check: shows a checker (Python, the same for every server) "
                                       "failing against a broken variant; runs on the first server version only")
    config.addinivalue_line("markers", "first_version_by_default: a long harness (failover, recovery, the "
                                       "property model, read cost); the default run takes it on the first "
                                       "server version only, --long on every version")


def pytest_collection_modifyitems(config, items):
    """A run that would test no database fails: without server binaries, or
    with a PGCREDIT_TEST_PG naming a version that is not installed, every
    database test would be skipped ("got empty parameter set") and the run
    would pass having proved nothing."""
    if not any("cluster" in getattr(item, "fixturenames", ()) for item in items):
        return  # nothing collected needs a server
    problem = _server_versions_problem()
    if problem:
        raise pytest.UsageError(problem)
    # A checker's self-check proves the checker, which is Python and the same
    # on every server: once is enough, and the checks themselves run on each.
    # The long harnesses take minutes per server: the default run (CI's, under
    # 15 minutes on 2 cores) takes them on the first version, --long on all.
    first = _server_versions()[0]
    long_run = config.getoption("--long")

    def once(item) -> bool:
        return bool(item.get_closest_marker("checker_self_check")
                    or (item.get_closest_marker("first_version_by_default") and not long_run))

    extra = [item for item in items if once(item)
             and getattr(item, "callspec", None) and item.callspec.params.get("cluster", first) != first]
    if extra:
        config.hook.pytest_deselected(items=extra)
        items[:] = [item for item in items if item not in extra]
        harnesses = sum(1 for item in extra if not item.get_closest_marker("checker_self_check"))
        if harnesses:
            DESELECTED.append(f"{harnesses} long-harness items run on PostgreSQL {first[0]} only "
                              f"(`./dev test --long` runs them on every server version)")


def pytest_generate_tests(metafunc):
    if "deployment" in metafunc.fixturenames and Path(metafunc.module.__file__).resolve().parent == CONTRACT:
        metafunc.parametrize("deployment", ["direct", "proxy"], indirect=True,
                             ids=["direct", f"proxy{PARTITIONS}"])


DESELECTED: list[str] = []


def pytest_terminal_summary(terminalreporter):
    from support.reliability import REPORTS

    for line in DESELECTED:
        terminalreporter.write_line(line, yellow=True)

    if REPORTS:
        terminalreporter.section("reliability report")
        for line in REPORTS:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def long_run(request) -> bool:
    return request.config.getoption("--long")


@pytest.fixture(scope="session", params=_server_versions(), ids=lambda v: f"pg{v[0]}")
def cluster(request):
    major, found = request.param
    bin_dir = embedded.runnable(found)
    pg = _Postgresql(initdb=str(bin_dir / "initdb"), postgres=str(bin_dir / "postgres"),
                     postgres_args="-h 127.0.0.1 -F -c logging_collector=off -c max_connections=300")
    try:
        c = Cluster(pg, major, bin_dir)
        with c.admin() as conn:
            conn.execute(f'CREATE DATABASE "{TEMPLATE}"')
        migrate(c.dsn(TEMPLATE))
        with c.admin() as conn:
            # Login roles for privilege tests; the credit roles exist once migrated.
            conn.execute(f"CREATE ROLE {APP_USER} LOGIN IN ROLE credit_app")
            conn.execute(f"CREATE ROLE {AUDITOR_USER} LOGIN IN ROLE credit_auditor")
            conn.execute(f"CREATE ROLE {MONITOR_USER} LOGIN IN ROLE credit_monitor")
        yield c
        c.spares.close(c.drop_database)
    finally:
        pg.stop()


@pytest.fixture(scope="session")
def proxy_templates(cluster):
    """A proxy and PARTITIONS partitions set up once by migrate --partitions,
    the templates of every test's own copies."""
    missing = plproxy_missing(cluster)
    if missing:
        pytest.skip(missing)
    names = [f"pgcredit_proxy_template_p{i}" for i in range(PARTITIONS)]
    with cluster.admin() as conn:
        for name in ["pgcredit_proxy_template", *names]:
            conn.execute(f'CREATE DATABASE "{name}"')
    migrate_partitions(cluster.dsn("pgcredit_proxy_template"), [cluster.dsn(n) for n in names])
    return Proxy(cluster, "pgcredit_proxy_template", names)


@pytest.fixture(scope="session")
def proxy_spares(cluster, proxy_templates):
    """Copies of the template proxy and its partitions, made ahead (Spares)."""
    spares = Spares(lambda: new_proxy(cluster, proxy_templates))
    yield spares
    spares.close(Proxy.drop)


@pytest.fixture
def deployment(request) -> str:
    """direct (a single server) or proxy: contract modules run with both."""
    kind = getattr(request, "param", "direct")
    marker = request.node.get_closest_marker("direct_only")
    if kind == "proxy" and marker:
        pytest.skip(f"not through the proxy: {marker.args[0]}")
    return kind


@pytest.fixture
def proxy(cluster, deployment, request):
    """In the proxy deployment, the test's proxy; None on a single server."""
    if deployment != "proxy":
        yield None
        return
    p = request.getfixturevalue("proxy_spares").take()
    yield p
    request.getfixturevalue("proxy_spares").later(p.drop)


@pytest.fixture
def dbname(cluster, proxy):
    """The test's database: a fresh copy of the template, or of the proxy."""
    if proxy is not None:
        yield proxy.name
        return
    name = cluster.spares.take()
    yield name
    cluster.spares.later(cluster.drop_database, name)


@pytest.fixture
def dsn(cluster, dbname) -> str:
    return cluster.dsn(dbname)


@pytest.fixture
def conn(dsn, proxy):
    factory = psycopg.Connection if proxy is None else ProxyConnection
    with factory.connect(dsn, autocommit=True, row_factory=dict_row) as c:
        c.proxy = proxy
        yield c


@pytest.fixture(scope="session")
def unreplicated(cluster):
    """(dsn, local dsn) of a database on a cluster of its own whose every
    commit waits for a synchronous standby that never connects (as for one
    that has stopped), unless the session sets synchronous_commit = local, as
    the local dsn does. test_no_false_ack.py and the Node example share it;
    each uses wholesaler ids of its own. APP_USER logs in with credit_app."""
    with private_server(cluster, ("fsync=off", f"synchronous_standby_names={ABSENT_STANDBY}")) as server:
        with psycopg.connect(server.conninfo(), autocommit=True, options=LOCAL) as c:
            c.execute("CREATE DATABASE credit")
        dsn = server.conninfo("credit")
        local = make_conninfo(dsn, options=LOCAL)
        migrate(local)
        with psycopg.connect(local, autocommit=True) as c:
            c.execute(f"CREATE ROLE {APP_USER} LOGIN IN ROLE credit_app")
        yield dsn, local


@pytest.fixture
def client(dsn):
    c = CreditClient(dsn)
    yield c
    c.close()


