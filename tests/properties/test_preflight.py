"""The preflight's rules (plugins/filter/cluster_layouts.py then layout_problems.py, chained as
roles/preflight does) over generated inventories: never an exception, a sound inventory has no
problem, and a documented-bad value of any one preflight variable gives at least one problem;
plus real ``ansible-playbook site.yml --tags preflight`` runs with bad inventories that must
fail cleanly, in plain sentences, without printing a secret."""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.properties import strategies as S
from tests.properties.conftest import examples
from tests.properties.harness import LINK, MARKER, RECORD, ROOT, secret


def _load(name: str):
    """The filter module as Ansible imports it (the collection through .build/link)."""
    if str(LINK) not in sys.path:
        sys.path.insert(0, str(LINK))
    return importlib.import_module(f"ansible_collections.wabiz.cluster.plugins.filter.{name}")


VARS = {
    "wabiz_master_instances": S.bad_int([0, -1, 2, "two", "1", None, 1.5]),
    "wabiz_coreapp_instances": S.bad_int([0, -1, "x", 5000, None]),
    "wabiz_webapp_instances": S.bad_int([0, -1, "x", 70000]),
    "wabiz_node_base_port": S.bad_int([0, -1, 65535, 65533, 70000, "x", 80, 9090]),
    "wabiz_webapp_port": S.bad_int([0, -1, 65536, "x", 6250, 6251]),
    "wabiz_external_hostname": S.bad_str(["", "10.0.1.11", "same"]),
    "wabiz_db_host": S.bad_str(["", " ", "10.0.1.11", "master1"]),
    "wabiz_db_password": S.bad_str(["", " ", None]),
    "wabiz_admin_password": S.bad_str(["", " ", None]),
    "wabiz_heartbeat_interval": S.bad_int([0, -1, 30, 31, "x", None, 1.5]),
    "wabiz_unhealthy_interval": S.bad_int([0, -1, 5, 4, "x", None]),
    "wabiz_media_source": S.bad_str(["volume", "nfs", "NFS", "s3", ""]),
    "wabiz_media_nfs_server": S.bad_str(["", "10.0.3.10"]),
    "wabiz_shards": S.bad_int([0, 3, 64, -1, "x", "2", 2.5, None, 4]),
    "wabiz_db_engine": S.bad_str(["mysql", "postgresql", "MYSQL", "oracle", "", None]),
    "wabiz_db_idle_timeout_ms": S.bad_int([0, 999, 180000, "x", None, ""]),
}
EXPLICIT = {
    "wabiz_master_instances": [0, 2, "two"], "wabiz_coreapp_instances": [0, "x", 5000],
    "wabiz_webapp_instances": [0, 70000], "wabiz_node_base_port": [70000, "x", 65533, 9090],
    "wabiz_webapp_port": [65536, 6251], "wabiz_db_host": ["", "10.0.1.11"], "wabiz_db_password": ["", None],
    "wabiz_admin_password": [""], "wabiz_heartbeat_interval": [0, 30, "x"], "wabiz_unhealthy_interval": [5, "x"],
    "wabiz_media_source": ["s3"], "wabiz_media_nfs_server": [""], "wabiz_shards": [3, "x", 4, None],
    "wabiz_db_engine": ["oracle", None], "wabiz_db_idle_timeout_ms": ["x"], "wabiz_external_hostname": ["same"],
}
GLOBAL = ("wabiz_shards", "wabiz_db_engine", "wabiz_db_idle_timeout_ms")
HOSTS = {"master1": "10.0.1.11", "master2": "10.0.1.12", "core1": "10.0.1.21", "core2": "10.0.1.22",
         "core3": "10.0.1.23", "web1": "10.0.1.31"}


def sound():
    groups = {"wabiz_master": ["master1", "master2"], "wabiz_coreapp": ["core1", "core2", "core3"],
              "wabiz_webapp": ["web1"], "wabiz_database": ["db1"], "wabiz_nfs": ["nfs1"]}
    groups["wabiz_nodes"] = groups["wabiz_master"] + groups["wabiz_coreapp"] + groups["wabiz_webapp"]
    groups["all"] = groups["wabiz_nodes"] + ["db1", "nfs1"]
    hostvars = {h: {"ansible_host": a} for h, a in HOSTS.items()}
    hostvars.update(db1={"ansible_host": "10.0.2.10"}, nfs1={"ansible_host": "10.0.3.10"})
    defaults = {"wabiz_master_instances": 1, "wabiz_coreapp_instances": 1, "wabiz_webapp_instances": 1,
                "wabiz_node_base_port": 6250, "wabiz_webapp_port": 9090, "wabiz_db_host": "10.0.2.10",
                "wabiz_db_password": True, "wabiz_admin_password": True, "wabiz_heartbeat_interval": 5,
                "wabiz_unhealthy_interval": 30, "wabiz_media_source": "nfs", "wabiz_media_nfs_server": "10.0.3.10"}
    glob = {"wabiz_shards": 2, "wabiz_db_engine": "mysql", "wabiz_db_idle_timeout_ms": None}
    return groups, hostvars, defaults, glob


def judge_inventory(groups, hostvars, defaults, glob):
    """The preflight's verdict as roles/preflight computes it (the optional arguments this version
    of the filters takes are passed when they exist)."""
    layouts_mod, problems_mod = _load("cluster_layouts"), _load("layout_problems")
    layouts = layouts_mod.cluster_layouts(groups, hostvars, defaults)
    kw = {}
    params = inspect.signature(problems_mod.layout_problems).parameters
    if "database_hosts" in params:
        kw["database_hosts"] = {h: hostvars[h].get("ansible_host", h) for h in groups.get("wabiz_database", [])}
    if "nfs_hosts" in params:
        kw["nfs_hosts"] = groups.get("wabiz_nfs", [])
    if "dev_hosts" in params:
        kw["dev_hosts"] = groups.get("wabiz_dev", [])
    return problems_mod.layout_problems(layouts, shards=glob["wabiz_shards"], engine=glob["wabiz_db_engine"],
                                        idle_timeout=glob["wabiz_db_idle_timeout_ms"], **kw)


def _as_int(v):
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        try:
            return int(v.strip())
        except ValueError:
            return None
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return None


def bad_reason(var, v):
    """Why the preflight's documentation rules out ``v`` for ``var`` (None: valid or borderline)."""
    n = _as_int(v)
    if var.endswith("_instances"):
        if n is None or n < 1:
            return "not a positive count (no container of a kind)"
        if var == "wabiz_master_instances" and n > 1:
            return "masters not on distinct hosts"
        if n * 4 + 6250 > 65535 or (var == "wabiz_webapp_instances" and n + 9090 > 65536):
            return "a port beyond 65535"
    if var in ("wabiz_node_base_port", "wabiz_webapp_port"):
        if n is None or not 1 <= n <= 65535:
            return "not a port"
        if var == "wabiz_node_base_port" and n + 8 > 65536:
            return "a port beyond 65535"
    if var == "wabiz_external_hostname" and isinstance(v, str) and v.strip():
        return "every node host given the same address (masters not on distinct hosts, ports clash)"
    if var in ("wabiz_db_host", "wabiz_db_password", "wabiz_admin_password"):
        if v is None or (isinstance(v, str) and not v.strip()):
            return "empty"
    if var == "wabiz_heartbeat_interval" and (n is None or n < 1 or n >= 30):
        return "not a positive interval below the unhealthy interval"
    if var == "wabiz_unhealthy_interval" and (n is None or n <= 5):
        return "unhealthy interval not above the heartbeat interval"
    if var == "wabiz_media_nfs_server" and (v is None or (isinstance(v, str) and not v.strip())):
        return "NFS media without a server"
    if var == "wabiz_shards" and (n not in (1, 2, 4, 8, 16, 32) or n + 1 > 3):
        return "invalid shard count, or fewer than shards + 1 coreapps"
    if var == "wabiz_db_engine" and v not in ("mysql", "postgresql"):
        return "unknown engine"
    return None


def isolated(fn, *args, timeout: float = 10.0, mem: int = 1 << 30):
    """Run ``fn(*args)`` in a forked child limited to ``mem`` bytes and ``timeout`` seconds (a
    filter that builds a list of 10**30 ports must not take the test run down with it).
    Returns ("ok", value), ("raised", text), ("hang", None) or ("died", text)."""
    import resource
    import select
    import signal

    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(rfd)
        try:
            resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
            try:
                out = ("ok", fn(*args))
            except MemoryError:
                out = ("died", f"MemoryError (over {mem >> 20} MB)")
            except Exception as exc:
                out = ("raised", f"{type(exc).__name__}: {exc}"[:2000])
            data = json.dumps(out, default=repr).encode()
        except BaseException as exc:
            data = json.dumps(("died", repr(exc)[:2000])).encode()
        with os.fdopen(wfd, "wb") as fh:
            fh.write(data)
        os._exit(0)
    os.close(wfd)
    chunks, deadline = [], time.monotonic() + timeout
    with os.fdopen(rfd, "rb") as fh:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fh], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return ("hang", None)
            chunk = os.read(fh.fileno(), 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    if not chunks:
        return ("died", f"child status {status}")
    kind, value = json.loads(b"".join(chunks))
    return (kind, value)


@pytest.mark.parametrize("var", sorted(VARS))
def test_preflight_filters_never_raise_and_flag_a_bad_value(var):
    @settings(max_examples=examples(15))
    @given(value=VARS[var], where=st.sampled_from(["all", "one"]))
    def prop(value, where):
        groups, hostvars, defaults, glob = sound()
        if var in GLOBAL:
            glob[var] = value
        elif where == "all" and var in defaults:
            defaults[var] = value
        else:
            for h in (HOSTS if where == "all" else ["master1"]):
                hostvars[h][var] = value
        started = time.monotonic()
        problems, error = None, None
        kind, got = isolated(judge_inventory, groups, hostvars, defaults, glob)
        if kind == "ok":
            problems = got
        elif kind == "hang":
            error = "no answer within 10 s (hang)"
        else:  # the property: the filters never raise
            error = got
        reason = bad_reason(var, value) if (where == "all" or var in GLOBAL) else None
        case = {"module": "preflight filters", "args": {var: value, "where": where}}
        if error:
            outcome = "hang" if kind == "hang" else "traceback"
            why = f"the filters raised or died: {error}" if kind != "hang" else f"the filters: {error}"
        elif not isinstance(problems, list) or not all(isinstance(p, str) and p.strip() for p in problems):
            outcome, why = "traceback", f"not a list of sentences: {problems!r}"
        elif any(MARKER in p for p in problems):
            outcome, why = "secret_leaked", f"a problem sentence holds a secret: {problems!r}"
        elif reason and not problems:
            outcome, why = "accepted_invalid", f"no problem reported for a bad value ({reason})"
        else:
            outcome, why = ("clear_error" if problems else "ok"), None
        RECORD.add(outcome, time.monotonic() - started, {**case, "problems": [why] if why else []},
                   key=json.dumps(case, default=repr))
        assert why is None, f"{why}\n  input: {var}={value!r} set on {where} host(s)"

    for v in EXPLICIT.get(var, []):
        prop = example(value=v, where="all")(prop)
    prop()


def test_preflight_filters_find_no_problem_in_a_sound_inventory():
    assert judge_inventory(*sound()) == []


# --- real playbook runs ----------------------------------------------------------------------

def _inventory(tmp: Path, hosts_vars: dict, all_vars: dict) -> Path:
    inv = tmp / "inventory"
    (inv / "group_vars").mkdir(parents=True)
    children = {g: {"hosts": {h: {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, **hv}
                              for h, hv in members.items()}} for g, members in hosts_vars.items()}
    nodes = {g: children.pop(g) for g in ("wabiz_master", "wabiz_coreapp", "wabiz_webapp") if g in children}
    doc = {"all": {"children": {"wabiz_nodes": {"children": nodes}, **children}}}
    (inv / "hosts.yml").write_text(yaml.safe_dump(doc))
    (inv / "group_vars" / "all.yml").write_text(yaml.safe_dump(all_vars))
    return inv


def _playbook(inv: Path, tmp: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build" / "link"), ANSIBLE_HOME=str(tmp / "ah"),
               ANSIBLE_LOCAL_TEMP=str(tmp / "at"), ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inv),
                           str(ROOT / "playbooks" / "site.yml"), "--tags", "preflight", "-vvv"],
                          capture_output=True, text=True, env=env, timeout=240, cwd=str(ROOT))


BAD_INVENTORIES = {
    "one_master_bad_shards_unknown_engine": (
        {"wabiz_master": {"m1": {"ansible_host": "10.0.1.11"}},
         "wabiz_coreapp": {"c1": {"ansible_host": "10.0.1.21"}},
         "wabiz_webapp": {"w1": {"ansible_host": "10.0.1.31"}}},
        {"wabiz_shards": 3, "wabiz_db_engine": "oracle", "wabiz_db_host": "10.0.2.10"}),
    "bad_types_and_ports": (
        {"wabiz_master": {"m1": {"ansible_host": "10.0.1.11"}, "m2": {"ansible_host": "10.0.1.12"}},
         "wabiz_coreapp": {"c1": {"ansible_host": "10.0.1.21"}, "c2": {"ansible_host": "10.0.1.22"},
                           "c3": {"ansible_host": "10.0.1.23"}},
         "wabiz_webapp": {"w1": {"ansible_host": "10.0.1.31"}}},
        {"wabiz_master_instances": "two", "wabiz_node_base_port": 70000, "wabiz_heartbeat_interval": "x",
         "wabiz_db_engine": "postgresql", "wabiz_db_idle_timeout_ms": 180000, "wabiz_db_host": "10.0.2.10"}),
}


@pytest.mark.parametrize("name", sorted(BAD_INVENTORIES))
def test_preflight_playbook_refuses_bad_inventory_cleanly_without_secret(name, tmp_path):
    hosts, all_vars = BAD_INVENTORIES[name]
    all_vars = {**all_vars, "wabiz_db_password": secret("db"), "wabiz_admin_password": secret("adm")}
    inv = _inventory(tmp_path, hosts, all_vars)
    started = time.monotonic()
    proc = _playbook(inv, tmp_path)
    out = proc.stdout + proc.stderr
    problems = []
    if proc.returncode == 0:
        problems.append("the playbook passed a bad inventory")
    if "Traceback" in out or "Unexpected Exception" in out or "unexpected type error" in out.lower():
        problems.append("a traceback or an unexpected exception: " + out[-2500:])
    if "cannot work" not in out:
        problems.append("no plain refusal ('The inventory describes a cluster that cannot work: ...'): " + out[-2500:])
    if MARKER in out:
        i = out.index(MARKER)
        problems.append(f"a secret in the output: ...{out[max(0, i - 200):i + 40]!r}")
    outcome = ("traceback" if any(p.startswith("a traceback") for p in problems) else
               "secret_leaked" if any(p.startswith("a secret") for p in problems) else
               "accepted_invalid" if proc.returncode == 0 else "clear_error")
    RECORD.add(outcome, time.monotonic() - started, {"module": "ansible-playbook site.yml --tags preflight",
                                                     "args": all_vars, "problems": [p[:800] for p in problems]})
    assert not problems, "; ".join(problems)
