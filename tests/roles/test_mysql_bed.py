"""The infrastructure roles on a MariaDB testbed: two cluster hosts (h1, h2), one host outside
the cluster (out1), a MariaDB host and an NFS host.

Converge, then a second run and check mode must change nothing; then every behaviour is
checked from the machines themselves: DB logins over TCP, NFS reads and writes, the cron job,
and connections through the firewall."""

from __future__ import annotations

import base64
import json
import textwrap
import time

import pytest

from tests.conformance import support as conformance
from tests.roles.conftest import Bed, bed_session, tail, testbed

NAME = "roles-mysql"
SUBNET = "172.28.20.0/24"
DB, NFS, H1, H2, OUT = "172.28.20.5", "172.28.20.6", "172.28.20.11", "172.28.20.12", "172.28.20.13"
# The firewall's NFS ports: NFS, rpcbind, MOUNT and NLM (nfs_server's fixed ports), rquota.
NFS_PORTS = "2049,111,20048,32803,875"
USER, PASSWORD = "wabiz_test", "roles-test-secret-1"
SINGLE_PREFIX = "single_"  # the single-connect client's own database, apart from anything else
CLIENT_PRIVILEGES = {"SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "ALTER", "INDEX", "DROP"}
pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def bed(docker_client, collections_path):
    hosts = ["h1:wabiz_master,wabiz_nodes", "h2:wabiz_coreapp,wabiz_webapp,wabiz_nodes", "out1:outsiders"]
    with bed_session(NAME, collections_path, hosts, "mariadb", True, SUBNET, {"wabiz_db_engine": "mysql"}) as b:
        # A small image inside h1 for stand-in containers (cleanup target, published ports).
        testbed.load_images(NAME, ["wabiz/base:bookworm"], only=["h1"])
        yield b


@pytest.fixture(scope="module")
def runs(bed):
    """Converge, run again, then check mode: the three recaps."""
    first = bed.play("infra.yml", label="converge")
    assert first.ok(), tail(first.output)
    second = bed.play("infra.yml", label="idempotence")
    check = bed.play("infra.yml", "--check", label="check")
    return {"converge": first, "again": second, "check": check}


def _mysql_login(bed: Bed, host: str, sql: str) -> tuple[bool, str]:
    script = textwrap.dedent(f"""\
        import pymysql
        try:
            c = pymysql.connect(host={DB!r}, user={USER!r}, password={PASSWORD!r}, connect_timeout=5)
        except pymysql.err.OperationalError as e:
            print("REFUSED", e.args[0]); raise SystemExit(3)
        cur = c.cursor(); cur.execute({sql!r})
        for row in cur.fetchall():
            print("\\t".join(str(x) for x in row))
        """)
    res = bed.sh(host, f"python3 - <<'EOF'\n{script}EOF")
    return res.returncode == 0, res.stdout + res.stderr


# --- convergence ------------------------------------------------------------------------------

def test_converge_changes_the_hosts(runs):
    changed = runs["converge"].changed()
    assert set(changed) == {"h1", "h2", "db", "nfs"}
    # The database, the NFS export, the cron job and the firewall all had something to do;
    # the engine was there already.
    assert all(n > 0 for n in changed.values()), changed


def test_second_run_changes_nothing(runs):
    assert runs["again"].ok(), tail(runs["again"].output)
    assert runs["again"].changed() == {"h1": 0, "h2": 0, "db": 0, "nfs": 0}, tail(runs["again"].output)


def test_check_mode_on_converged_state_changes_nothing(runs):
    assert runs["check"].ok(), tail(runs["check"].output)
    assert runs["check"].changed() == {"h1": 0, "h2": 0, "db": 0, "nfs": 0}, tail(runs["check"].output)


def test_docker_engine_reports_the_compose_command(runs):
    # The testbed hosts have the v2 plugin and v1: v2 is chosen.
    assert runs["converge"].output.count("compose-command=docker compose") == 2


# --- database -------------------------------------------------------------------------------

@pytest.mark.parametrize("host", ["h1", "h2"])
def test_cluster_host_logs_in_with_exactly_the_client_privileges(bed, runs, host):
    ok, out = _mysql_login(bed, host, "SHOW GRANTS FOR CURRENT_USER()")
    assert ok, out
    grant = next(line for line in out.splitlines() if line.startswith("GRANT "))
    privileges = {p.strip() for p in grant[len("GRANT "):grant.index(" ON ")].split(",")}
    assert privileges == CLIENT_PRIVILEGES
    assert " ON *.* TO `wabiz_test`@`172.28.20.1" in grant


def test_cluster_user_creates_its_prefixed_database(bed, runs):
    ok, out = _mysql_login(bed, "h1", "CREATE DATABASE IF NOT EXISTS rt_probe")
    assert ok, out
    ok, out = _mysql_login(bed, "h2", "DROP DATABASE rt_probe")
    assert ok, out


def test_non_cluster_host_is_refused(bed, runs):
    ok, out = _mysql_login(bed, "out1", "SELECT 1")
    assert not ok
    assert "REFUSED 1130" in out or "REFUSED 1045" in out, out  # host not allowed / access denied


def test_max_connections_live_and_persisted(bed, runs):
    # 64 per node x 2 nodes + 32 headroom.
    res = bed.sh("db", "mariadb -N -e 'SELECT @@max_connections'")
    assert res.stdout.strip() == "160", res.stdout + res.stderr
    conf = bed.sh("db", "cat /etc/mysql/mariadb.conf.d/70-wabiz-cluster.cnf").stdout
    assert "max_connections = 160" in conf
    assert f"bind-address = 127.0.0.1,{DB}" in conf


def test_hosts_leaving_the_cluster_lose_their_account(bed, runs):
    """Only h1 in the client list: h2's account goes; the default list brings it back."""
    narrowed = bed.play("database.yml", "-e", json.dumps({"database_client_hosts": [H1]}), label="db-narrowed")
    assert narrowed.ok() and narrowed.changed() == {"db": 1}, tail(narrowed.output)
    try:
        ok, out = _mysql_login(bed, "h2", "SELECT 1")
        assert not ok, out
        ok, out = _mysql_login(bed, "h1", "SELECT 1")
        assert ok, out
    finally:
        back = bed.play("database.yml", label="db-restored")
        assert back.ok() and back.changed() == {"db": 1}, tail(back.output)
    ok, out = _mysql_login(bed, "h2", "SELECT 1")
    assert ok, out


# --- NFS ------------------------------------------------------------------------------------

@pytest.mark.parametrize("host", ["h1", "h2"])
def test_cluster_host_writes_and_lists_the_share(bed, runs, host):
    res = bed.sh(host, f"echo media-from-{host} >/tmp/m && nfs-cp /tmp/m 'nfs://{NFS}/media/{host}.bin?version=4' "
                       f"&& nfs-ls 'nfs://{NFS}/media?version=4'")
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"{host}.bin" in res.stdout
    assert bed.sh("nfs", f"cat /exports/media/{host}.bin").stdout.strip() == f"media-from-{host}"


def test_non_cluster_host_cannot_mount_the_share(bed, runs):
    res = bed.sh("out1", f"timeout 20 nfs-ls 'nfs://{NFS}/media?version=4'")
    assert res.returncode != 0, res.stdout
    res = bed.sh("out1", f"echo x >/tmp/m; timeout 20 nfs-cp /tmp/m 'nfs://{NFS}/media/out1.bin?version=4'")
    assert res.returncode != 0
    assert bed.sh("nfs", "test -e /exports/media/out1.bin").returncode != 0


def test_a_node_that_cannot_mount_the_share_fails_and_says_why(bed, runs):
    """No silent local media: with the default kernel mount, a host whose kernel has no NFS client
    (these machines are containers) fails with the reason and the way out, and mounts nothing."""
    res = bed.play("media_mount.yml", "-e", f"wabiz_media_nfs_server={NFS}")
    out = " ".join(res.output.split())
    assert res.rc != 0 and res.recap["h1"]["failed"] == 1, tail(res.output)
    assert f"h1 could not mount the media share {NFS}:/media on /mnt/wamedia-kernel-test" in out, tail(res.output)
    assert "set wabiz_media_nfs_kernel_mount to false (the media are then NOT shared)" in out
    assert bed.sh("h1", "grep -c wamedia-kernel-test /proc/mounts /etc/fstab || true").stdout.count(":0") == 2


def _compose_up_meta_single_connect(bed: Bed, version: str) -> dict[str, str]:
    """Meta's prod-docker-compose.yml, unchanged, on h1 with a db.env for this bed's MariaDB (the
    file a user edits, as Meta's docs say): the stand-in images run a single-connect client.
    Returns the container name of each service."""
    meta = conformance.locate_meta() / "installation" / "prod-docker-compose.yml"
    assert conformance.tree_hashes(meta.parent.parent)["installation/prod-docker-compose.yml"] == \
        conformance.recorded_hashes()["installation/prod-docker-compose.yml"], "Meta's file, unchanged"
    db_env = (f"WA_DB_ENGINE=MYSQL\nWA_DB_HOSTNAME={DB}\nWA_DB_PORT=3306\nWA_DB_USERNAME={USER}\n"
              f"WA_DB_PASSWORD={PASSWORD}\nWA_DB_NAME_PREFIX={SINGLE_PREFIX}\n")
    files = {"docker-compose.yml": meta.read_bytes(), "db.env": db_env.encode()}
    write = " && ".join(f"echo {base64.b64encode(data).decode()} | base64 -d > /opt/single/{name}"
                        for name, data in files.items())
    up = bed.sh("h1", f"mkdir -p /opt/single && {write} && cd /opt/single && "
                      f"if docker compose version >/dev/null 2>&1; then c='docker compose'; else c=docker-compose; fi; "
                      f"WA_API_VERSION={version} $c -p single up -d", timeout=180)
    assert up.returncode == 0, up.stdout + up.stderr
    names = {}
    for service in ("wacore", "waweb"):
        ps = bed.sh("h1", f"docker ps -a --filter label=com.docker.compose.service={service} --format '{{{{.Names}}}}'")
        names[service] = ps.stdout.strip()
    return names


def test_a_single_connect_client_is_stopped_before_the_cluster_or_refused(bed, runs):
    """The HA guide's step 6: a single-connect client (Meta's prod-docker-compose.yml, unchanged,
    on the stand-in images: no WA_APP_MULTICONNECT) holds the account's connection; the node
    role stops its containers and leaves an HA container of the same image running; with
    wabiz_single_connect_client=refuse the role fails, names them and stops nothing."""
    version = "2.53.2"
    core, web = (f"docker.whatsapp.biz/{kind}:v{version}" for kind in ("coreapp", "web"))
    testbed.load_images(NAME, [core, web], only=["h1"])
    setup = bed.sh("h1", f"docker rm -f ha-node >/dev/null 2>&1; "
                         f"docker run -d --name ha-node -e WA_APP_MULTICONNECT=1 --entrypoint sleep {core} infinity")
    assert setup.returncode == 0, setup.stderr

    def running(name: str) -> bool:
        return bed.sh("h1", f"docker inspect -f '{{{{.State.Running}}}}' {name}").stdout.strip() == "true"

    def gateway(name: str) -> str:
        probe = ("import json,urllib.request; print(json.load(urllib.request.urlopen("
                 "'http://127.0.0.1:6253/health', timeout=2))['gateway_status'])")
        return bed.sh("h1", f'docker exec {name} python3 -c "{probe}" 2>/dev/null').stdout.strip()

    try:
        names = _compose_up_meta_single_connect(bed, version)
        deadline = time.monotonic() + 90
        while gateway(names["wacore"]) != "connected" and time.monotonic() < deadline:
            time.sleep(1)
        assert gateway(names["wacore"]) == "connected", bed.sh("h1", f"docker logs {names['wacore']} 2>&1 | tail -30").stdout
        assert running(names["waweb"])

        refused = bed.play("single_connect.yml", "-e", "wabiz_single_connect_client=refuse")
        out = " ".join(refused.output.split())
        assert refused.rc != 0 and "h1 runs a single-connect WhatsApp Business API client (" in out, \
            tail(refused.output)
        assert names["wacore"] in out and names["waweb"] in out, tail(refused.output)
        assert running(names["wacore"]) and running(names["waweb"]) and running("ha-node"), "refuse stops nothing"
        stopped = bed.play("single_connect.yml")
        assert stopped.ok() and stopped.recap["h1"]["changed"] == 1, \
            tail(stopped.output) + bed.sh("h1", "docker ps -a").stdout
        assert not running(names["wacore"]) and not running(names["waweb"]) and running("ha-node")
        again = bed.play("single_connect.yml")
        assert again.ok() and again.recap["h1"]["changed"] == 0, tail(again.output)
    finally:
        bed.sh("h1", "cd /opt/single 2>/dev/null && { docker compose -p single down -v 2>/dev/null || "
                     "docker-compose -p single down -v; }; docker rm -f ha-node; rm -rf /opt/single", timeout=120)
        _mysql_login(bed, "h1", f"DROP DATABASE IF EXISTS {SINGLE_PREFIX}waent")


def test_ganesha_conf_lists_only_cluster_hosts_and_is_marked_managed(bed, runs):
    conf = bed.sh("nfs", "cat /etc/ganesha/ganesha.conf").stdout
    assert f"Clients = {H1}, {H2};" in conf
    assert "Access_Type = None;" in conf  # nobody else
    # NFSv3's side services on fixed ports, so that the firewall can filter them.
    assert "MNT_Port = 20048;" in conf and "NLM_Port = 32803;" in conf, conf
    assert bed.sh("nfs", "test -f /etc/ganesha/ganesha.conf.managed").returncode == 0


# --- log cleanup ----------------------------------------------------------------------------

@pytest.mark.parametrize("host", ["h1", "h2"])
def test_cleanup_cron_entry_is_installed(bed, runs, host):
    res = bed.sh(host, "crontab -l")
    assert "#Ansible: wabiz.cluster log cleanup" in res.stdout
    assert "7 4 * * * /usr/local/sbin/wabiz-log-cleanup >>/var/log/wabiz-log-cleanup.log 2>&1" in res.stdout


def test_cleanup_script_runs_cleanup_in_compose_containers_only(bed, runs):
    setup = textwrap.dedent("""\
        set -e
        docker rm -f rt-core rt-db rt-loose >/dev/null 2>&1 || true
        mk='mkdir -p /opt/whatsapp/bin && printf "#!/bin/sh\\necho done >/tmp/cleaned\\n" >/opt/whatsapp/bin/cleanup.sh && chmod +x /opt/whatsapp/bin/cleanup.sh && exec sleep infinity'
        docker run -d --name rt-core --label com.docker.compose.project=wabiz-coreapp wabiz/base:bookworm sh -c "$mk"
        docker run -d --name rt-db --label com.docker.compose.project=wabiz-coreapp wabiz/base:bookworm sleep infinity
        docker run -d --name rt-loose wabiz/base:bookworm sh -c "$mk"
        for i in $(seq 1 50); do docker exec rt-core test -x /opt/whatsapp/bin/cleanup.sh && docker exec rt-loose test -x /opt/whatsapp/bin/cleanup.sh && exit 0; sleep 0.2; done
        exit 1
        """)
    res = bed.sh("h1", setup)
    assert res.returncode == 0, res.stdout + res.stderr
    try:
        run = bed.sh("h1", "/usr/local/sbin/wabiz-log-cleanup")
        assert run.returncode == 0, run.stdout + run.stderr
        assert "rt-core: cleaned" in run.stdout
        assert "rt-db: no /opt/whatsapp/bin/cleanup.sh, skipped" in run.stdout
        assert "rt-loose" not in run.stdout  # not in a compose project
        assert bed.sh("h1", "docker exec rt-core cat /tmp/cleaned").stdout.strip() == "done"
        assert bed.sh("h1", "docker exec rt-loose test -e /tmp/cleaned").returncode != 0
    finally:
        bed.sh("h1", "docker rm -f rt-core rt-db rt-loose")


# --- firewall -------------------------------------------------------------------------------

def _rules(bed: Bed, host: str, chain: str) -> list[str]:
    res = bed.sh(host, f"iptables -w -S {chain}")
    assert res.returncode == 0, res.stderr
    return [line for line in res.stdout.splitlines() if line.startswith("-A ")]


@pytest.mark.parametrize("host", ["h1", "h2"])
def test_docker_user_sends_cluster_and_webapp_ports_through_the_role_chains(bed, runs, host):
    docker_user = _rules(bed, host, "DOCKER-USER")
    assert any("--dports 6250:6253" in r and r.endswith("-j WABIZ-CLUSTER") for r in docker_user), docker_user
    assert any("--dports 443" in r and r.endswith("-j WABIZ-WEBAPP") for r in docker_user), docker_user
    assert docker_user[-1] == "-A DOCKER-USER -j RETURN"  # Docker's own rule stays last
    cluster = _rules(bed, host, "WABIZ-CLUSTER")
    assert "--ctstate RELATED,ESTABLISHED" in cluster[0]  # established connections first
    assert cluster[-1].endswith("-j DROP")
    allowed = {r.split("-s ")[1].split()[0] for r in cluster if "-s " in r}
    assert allowed == {f"{H1}/32", f"{H2}/32"}
    for rule in docker_user[:-1] + cluster + _rules(bed, host, "WABIZ-WEBAPP"):
        assert '--comment "wabiz.cluster: ' in rule, rule


def test_published_ports_are_closed_to_non_cluster_hosts(bed, runs):
    """A container on h1 publishes a coreapp port (6250) and the webapp port (9090 -> 443)."""
    start = ("docker rm -f rt-ports >/dev/null 2>&1; docker run -d --name rt-ports -p 6250:6250 -p 9090:443 "
             "wabiz/base:bookworm sh -c 'python3 -m http.server 6250 & exec python3 -m http.server 443' >/dev/null "
             "&& for i in $(seq 1 50); do curl -s -o /dev/null http://127.0.0.1:6250/ && exit 0; sleep 0.2; done; exit 1")
    assert bed.sh("h1", start).returncode == 0
    try:
        probe = "curl -s -o /dev/null -m 5 -w '%{{http_code}}' http://{addr}:{port}/"
        # From the other cluster host: both open.
        assert bed.sh("h2", probe.format(addr=H1, port=6250)).stdout == "200"
        assert bed.sh("h2", probe.format(addr=H1, port=9090)).stdout == "200"
        # From outside the cluster: the coreapp port is dropped (timeout), the webapp open.
        blocked = bed.sh("out1", probe.format(addr=H1, port=6250))
        assert blocked.returncode == 28, (blocked.returncode, blocked.stdout)  # curl: timed out
        assert bed.sh("out1", probe.format(addr=H1, port=9090)).stdout == "200"
        # The webapp only for h2: out1 is dropped there too, h2 still gets through.
        narrowed = bed.play("firewall.yml", "--limit", "h1",
                            "-e", json.dumps({"firewall_webapp_allowed_sources": [H2]}), label="fw-webapp-narrowed")
        assert narrowed.ok(), tail(narrowed.output)
        assert bed.sh("out1", probe.format(addr=H1, port=9090)).returncode == 28
        assert bed.sh("h2", probe.format(addr=H1, port=9090)).stdout == "200"
    finally:
        bed.sh("h1", "docker rm -f rt-ports")
        restored = bed.play("firewall.yml", "--limit", "h1", label="fw-webapp-restored")
        assert restored.ok(), tail(restored.output)
    assert any("-s" not in r and "allow 0.0.0.0/0" in r for r in _rules(bed, "h1", "WABIZ-WEBAPP"))
    assert not any(H2 in r for r in _rules(bed, "h1", "WABIZ-WEBAPP"))


def test_database_port_input_rules_keep_non_cluster_hosts_out(bed, runs):
    """h2 stands in for the database host (INPUT rules on port 13306, a listener there)."""
    assert any("--dports 13306" in r and r.endswith("-j WABIZ-DATABASE") for r in _rules(bed, "h2", "INPUT"))
    db_chain = _rules(bed, "h2", "WABIZ-DATABASE")
    assert "--ctstate RELATED,ESTABLISHED" in db_chain[0] and db_chain[-1].endswith("-j DROP")
    listener = bed.sh(
        "h2", "nohup python3 -m http.server 13306 --directory /tmp >/dev/null 2>&1 & echo $! >/tmp/rt-listener.pid; "
              "for i in $(seq 1 50); do curl -s -o /dev/null http://127.0.0.1:13306/ && exit 0; sleep 0.2; done; exit 1")
    assert listener.returncode == 0, listener.stderr
    try:
        probe = f"curl -s -o /dev/null -m 5 -w '%{{http_code}}' http://{H2}:13306/"
        assert bed.sh("h1", probe).stdout == "200"
        assert bed.sh("out1", probe).returncode == 28
    finally:
        bed.sh("h2", 'kill "$(cat /tmp/rt-listener.pid)"')


def test_nfs_port_input_rules_keep_non_cluster_hosts_out(bed, runs):
    """h1 stands in for the NFS host (INPUT rules on the NFS ports for tcp and udp, a listener
    on 2049 there): the testbed's NFS container has neither iptables nor NET_ADMIN."""
    jumps = [r for r in _rules(bed, "h1", "INPUT") if r.endswith("-j WABIZ-NFS")]
    assert sorted(r.split()[3] for r in jumps) == ["tcp", "udp"], jumps  # -A INPUT -p PROTO ...
    for rule in jumps:
        assert f"-m multiport --dports {NFS_PORTS} " in rule, rule
        assert f'--comment "wabiz.cluster: NFS ports {NFS_PORTS} ({rule.split()[3]})"' in rule, rule
    assert not any(r.endswith("-j WABIZ-NFS") for r in _rules(bed, "h2", "INPUT"))  # h1 only
    nfs_chain = _rules(bed, "h1", "WABIZ-NFS")
    assert "--ctstate RELATED,ESTABLISHED" in nfs_chain[0] and nfs_chain[-1].endswith("-j DROP"), nfs_chain
    assert any(r.startswith("-A WABIZ-NFS -i lo ") for r in nfs_chain), nfs_chain
    assert {r.split("-s ")[1].split()[0] for r in nfs_chain if "-s " in r} == {f"{H1}/32", f"{H2}/32"}
    for rule in nfs_chain:
        assert '--comment "wabiz.cluster: ' in rule, rule
    listener = bed.sh(
        "h1", "nohup python3 -m http.server 2049 --directory /tmp >/dev/null 2>&1 & echo $! >/tmp/rt-nfs-listener.pid; "
              "for i in $(seq 1 50); do curl -s -o /dev/null http://127.0.0.1:2049/ && exit 0; sleep 0.2; done; exit 1")
    assert listener.returncode == 0, listener.stderr  # from this host (lo): let through
    try:
        probe = f"curl -s -o /dev/null -m 5 -w '%{{http_code}}' http://{H1}:2049/"
        assert bed.sh("h2", probe).stdout == "200"  # a cluster host
        blocked = bed.sh("out1", probe)
        assert blocked.returncode == 28, (blocked.returncode, blocked.stdout)  # curl: timed out (dropped)
    finally:
        bed.sh("h1", 'kill "$(cat /tmp/rt-nfs-listener.pid)"')


def test_sources_leaving_the_cluster_lose_their_firewall_rule(bed, runs):
    extra = "172.28.20.99"
    wider = bed.play("firewall.yml", "-e", json.dumps({"firewall_cluster_sources": [H1, H2, extra]}), label="fw-wider")
    assert wider.ok(), tail(wider.output)
    assert any(f"-s {extra}/32" in r for r in _rules(bed, "h1", "WABIZ-CLUSTER"))
    assert _rules(bed, "h1", "WABIZ-CLUSTER")[-1].endswith("-j DROP")  # the new source went before the DROP
    assert any(f"-s {extra}/32" in r for r in _rules(bed, "h1", "WABIZ-NFS"))
    assert _rules(bed, "h1", "WABIZ-NFS")[-1].endswith("-j DROP")
    back = bed.play("firewall.yml", label="fw-restored")
    assert back.ok(), tail(back.output)
    assert not any(extra in r for r in _rules(bed, "h1", "WABIZ-CLUSTER"))
    assert not any(extra in r for r in _rules(bed, "h2", "WABIZ-DATABASE"))
    assert not any(extra in r for r in _rules(bed, "h1", "WABIZ-NFS"))
