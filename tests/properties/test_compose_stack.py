"""compose_stack with a throwaway project whose image is not on the host (pull=never): bad
values of every option fail cleanly and leave the project dir and Docker (containers, networks,
volumes of the project) as they were; a docker_host that misbehaves fails within the timeout."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.properties import strategies as S
from tests.properties.conftest import examples
from tests.properties.harness import MARKER, assert_clean, judge, run_module, snapshot

# As the node role lays a project out: the database password only in db.env, read by env_file.
COMPOSE = ("services:\n  app:\n    image: wabiz-prop-absent:never\n    env_file:\n      - db.env\n"
           "    environment:\n      EXTERNAL_HOSTNAME: ${EXTERNAL_HOSTNAME:-none}\n")


def docker_state(project: str):
    import docker

    client = docker.from_env(timeout=20)
    try:
        flt = {"label": f"com.docker.compose.project={project}"}
        return {"containers": sorted(c.name for c in client.containers.list(all=True, filters=flt)),
                "networks": sorted(n.name for n in client.networks.list(filters=flt)),
                "volumes": sorted(v.name for v in client.volumes.list(filters=flt))}
    finally:
        client.close()


def _project(w: Path) -> tuple[dict, str]:
    src = w / "proj"
    src.mkdir()
    (src / "docker-compose.yml").write_text(COMPOSE)
    (src / "db.env").write_text(f"WA_DB_ENGINE=MYSQL\nWA_DB_HOSTNAME=db\nWA_DB_PASSWORD=pw-{MARKER}\n")
    (src / "db.env").chmod(0o600)
    name = f"prop{uuid.uuid4().hex[:8]}"
    return {"project_src": str(src), "project_name": name, "state": "present", "pull": "never", "wait": True,
            "wait_timeout": 5, "env": {"EXTERNAL_HOSTNAME": "127.0.0.1"}}, name


def _inside(w: Path, value):
    if isinstance(value, str) and value.startswith("/"):
        return str(w) + value
    if isinstance(value, list):
        return [_inside(w, v) for v in value]
    return value


OPTIONS = {
    "project_src": S.bad_str(["", "/nonexistent", "proj/docker-compose.yml"]).filter(lambda v: v is not None),
    "files": st.one_of(S.bad_list(), st.sampled_from([["missing.yml"], ["/etc/passwd"], ["docker-compose.yml", ""],
                                                      ["bad.yml"]])),
    "project_name": S.bad_str(["Upper", "-lead", "a b", "ok_name", "x" * 300, "ä"]),
    "state": S.bad_str(["present", "absent", "stopped", "restarted", "started"]),
    "env": st.one_of(S.bad_dict(), st.sampled_from([{"X": "a\nb"}, {"A B": "1"}, {"": "x"},
                                                    {"X": ["y"]}, {"PATH": ""}, {"COMPOSE_FILE": "/nonexistent"}])),
    "services": st.one_of(S.bad_list(), st.sampled_from([["nosuch"], ["app", "app"], ["-d"], ["--help"]])),
    "dependencies": S.bad_bool(), "remove_volumes": S.bad_bool(), "remove_orphans": S.bad_bool(),
    "pull": S.bad_str(["always", "missing", "never", "Never", ""]),
    "wait": S.bad_bool(),
    "wait_timeout": S.bad_int([0, -1, 1, 2**31]),
    "cli": S.bad_str(["auto", "v2", "v1", "v3", ""]),
    "docker_host": S.bad_str(["", "tcp://", "unix:///nonexistent.sock", "ssh://nobody@127.0.0.1:1",
                              "http://[::1", "tcp://127.0.0.1:99999", "npipe:////./pipe/x"]),
}
EXPLICIT = {
    "project_src": ["", "/nonexistent"], "files": [["missing.yml"], ["bad.yml"], [""]],
    "project_name": ["Upper", "a b", "-x"], "state": ["started", ""],
    "env": [{"X": "a\nb"}, "a=b", {"X": ["y"]}, {"PATH": ""}], "services": [["nosuch"], ["--help"]],
    "dependencies": ["maybe"], "remove_volumes": ["maybe"], "remove_orphans": ["maybe"],
    "pull": ["Never", ""], "wait": ["maybe"], "wait_timeout": [0, -1],
    "cli": ["v3", ""], "docker_host": ["tcp://127.0.0.1:99999", "unix:///nonexistent.sock", "http://[::1"],
}


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_compose_stack_bad_value_fails_cleanly_no_traceback_no_hang_no_leak_no_change(option, workdir):
    @settings(max_examples=examples(2))
    @given(value=OPTIONS[option], check=st.booleans())
    def prop(value, check):
        w = workdir()
        args, project = _project(w)
        (w / "proj" / "bad.yml").write_text("services: [\n")
        if option in ("project_src", "files"):
            value = _inside(w, value)
        args[option] = value
        before, dstate = snapshot(w), docker_state(project)
        wt = args.get("wait_timeout")
        budget = (wt if isinstance(wt, int) and not isinstance(wt, bool) and 0 < wt < 30 else 5) + 20
        run = run_module("compose_stack", args, w, check=check, budget=budget)
        judge(run, before=before, after=snapshot(w), secrets_root=w,
              allowed_secret_files=(w / "proj" / "db.env",), extra_state=(dstate, docker_state(project)))
        assert_clean(run)

    for v in EXPLICIT[option]:
        prop = example(value=v, check=False)(prop)
    prop()


@pytest.mark.parametrize("kind", ["silent", "garbage", "close", "html"])
def test_compose_stack_broken_docker_host_fails_within_wait_timeout(kind, workdir, listeners):
    """docker_host pointing at a listener that misbehaves: a clean failure, not a wait of the
    Docker SDK's own 60 s per call."""

    @settings(max_examples=1)
    @given(wait_timeout=st.integers(1, 5), check=st.booleans())
    def prop(wait_timeout, check):
        w = workdir()
        args, _project_name = _project(w)
        args.update(docker_host=f"tcp://127.0.0.1:{listeners[kind].port}", wait_timeout=wait_timeout)
        before = snapshot(w)
        run = run_module("compose_stack", args, w, check=check, budget=wait_timeout + 10)
        judge(run, before=before, after=snapshot(w), secrets_root=w,
              allowed_secret_files=(w / "proj" / "db.env",))
        if not run.failed:
            run.problems.append(f"succeeded against a {kind} listener as docker_host")
        assert_clean(run)

    prop()
