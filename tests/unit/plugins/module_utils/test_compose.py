"""compose_stack logic: CLI detection, parsers over captured outputs, plan and comparison of Docker state."""

from __future__ import annotations

import copy
import json
import os
import time

import pytest
from ansible_collections.wabiz.cluster.plugins.module_utils import _compose as compose
from ansible_collections.wabiz.cluster.tests.unit.plugins.module_utils.listeners import Listener

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "compose")


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


# --- versions and CLI detection -----------------------------------------------------------

@pytest.mark.parametrize(
    "name, version, kind",
    [
        ("v2.40.3-version.txt", "2.40.3", "v2"),  # docker compose version
        ("v2.40.3-version-short.txt", "2.40.3", "v2"),  # docker compose version --short
        ("v1.29.2-version.txt", "1.29.2", "v1"),  # docker-compose version (4 lines)
        ("v1.29.2-version-short.txt", "1.29.2", "v1"),
    ],
)
def test_parse_version_of_captured_outputs(name, version, kind):
    text = fixture(name)
    assert compose.parse_version(text) == version
    assert compose.cli_kind(version) == kind


@pytest.mark.parametrize("text", ["", "docker: 'compose' is not a docker command.", None])
def test_parse_version_without_a_version(text):
    assert compose.parse_version(text) is None


class FakeCli:
    """run/which for detect_cli: which binaries exist and what 'version --short' prints."""

    def __init__(self, plugin=None, standalone=None):
        self.plugin = plugin
        self.standalone = standalone
        self.calls = []

    def which(self, name):
        if name == "docker":
            return "/usr/bin/docker"
        if name == "docker-compose" and self.standalone:
            return "/usr/bin/docker-compose"
        return None

    def run(self, argv):
        self.calls.append(argv)
        if argv[:2] == ["/usr/bin/docker", "compose"]:
            if self.plugin:
                return 0, self.plugin + "\n", ""
            return 1, "", "docker: 'compose' is not a docker command.\nSee 'docker --help'"
        if argv[0] == "/usr/bin/docker-compose":
            return 0, self.standalone + "\n", ""
        raise AssertionError(argv)


@pytest.mark.parametrize(
    "plugin, standalone, preference, kind, argv",
    [
        ("2.40.3", "1.29.2", "auto", "v2", ["/usr/bin/docker", "compose"]),
        (None, "1.29.2", "auto", "v1", ["/usr/bin/docker-compose"]),
        ("2.40.3", "1.29.2", "v1", "v1", ["/usr/bin/docker-compose"]),
        (None, "2.40.3", "v2", "v2", ["/usr/bin/docker-compose"]),  # standalone v2 binary
        ("2.40.3", None, "v2", "v2", ["/usr/bin/docker", "compose"]),
    ],
)
def test_detect_cli(plugin, standalone, preference, kind, argv):
    fake = FakeCli(plugin, standalone)
    cli = compose.detect_cli(fake.run, fake.which, preference)
    assert cli["kind"] == kind
    assert cli["argv"] == argv


def test_detect_cli_v1_forced_but_only_v2_standalone_says_so():
    fake = FakeCli(None, "2.40.3")
    with pytest.raises(compose.ComposeError) as err:
        compose.detect_cli(fake.run, fake.which, "v1")
    assert "is compose 2.40.3 (v2), not v1" in err.value.msg


def test_detect_cli_nothing_found_lists_what_was_tried():
    fake = FakeCli(None, None)
    with pytest.raises(compose.ComposeError) as err:
        compose.detect_cli(fake.run, fake.which, "auto")
    assert "'docker compose' (plugin): docker: 'compose' is not a docker command." in err.value.msg
    assert "no docker-compose in PATH" in err.value.msg


@pytest.mark.parametrize(
    "name, project",
    [("Whatsapp", "whatsapp"), ("wa.prod stack", "waprodstack"), ("_x-1", "x-1"), ("my_app-2", "my_app-2")],
)
def test_normalize_project_name(name, project):
    assert compose.normalize_project_name(name) == project


# --- config parsing ------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["v2.40.3-config-hash.txt", "v1.29.2-config-hash.txt"])
def test_parse_hashes_of_captured_outputs(name):
    hashes = compose.parse_hashes(fixture(name))
    assert sorted(hashes) == ["web", "worker"]
    assert all(len(h) == 64 for h in hashes.values())


def test_parse_hashes_ignores_warnings():
    text = 'time="2026-11-22T18:54:13Z" level=warning msg="version is obsolete"\nweb ' + "a" * 64 + "\n"
    assert compose.parse_hashes(text) == {"web": "a" * 64}


@pytest.mark.parametrize("name, fmt", [("v2.40.3-config.json", "json"), ("v1.29.2-config.yaml.txt", "yaml")])
def test_parse_config_of_captured_outputs(name, fmt):
    pytest.importorskip("yaml")
    config = compose.parse_config(fixture(name), fmt)
    assert config == {
        "web": {"image": "wabiz/base:bookworm", "depends_on": [], "healthcheck": True, "build": False},
        "worker": {"image": "wabiz/base:bookworm", "depends_on": ["web"], "healthcheck": False, "build": False},
    }


def test_parse_config_list_form_depends_on_and_disabled_healthcheck():
    text = json.dumps({"services": {"a": {"image": "x", "depends_on": ["b"], "healthcheck": {"disable": True}},
                                    "b": {"build": {"context": "."}}}})
    config = compose.parse_config(text, "json")
    assert config["a"]["depends_on"] == ["b"]
    assert config["a"]["healthcheck"] is False
    assert config["b"]["build"] is True and config["b"]["image"] is None


def test_parse_config_garbage_is_a_clear_error():
    with pytest.raises(compose.ComposeError) as err:
        compose.parse_config("not json", "json")
    assert "cannot read the compose configuration" in err.value.msg


CONFIG = {
    "waweb": {"image": "web:1", "depends_on": [], "healthcheck": True, "build": False},
    "wacore": {"image": "core:1", "depends_on": [], "healthcheck": False, "build": False},
    "master": {"image": "core:1", "depends_on": ["wacore"], "healthcheck": False, "build": False},
}


@pytest.mark.parametrize(
    "wanted, deps, scope",
    [
        ([], True, ["master", "wacore", "waweb"]),
        (["wacore"], True, ["wacore"]),
        (["master"], True, ["master", "wacore"]),
        (["master"], False, ["master"]),
    ],
)
def test_service_scope(wanted, deps, scope):
    assert compose.service_scope(CONFIG, wanted, deps) == scope


def test_service_scope_unknown_service_names_what_exists():
    with pytest.raises(compose.ComposeError) as err:
        compose.service_scope(CONFIG, ["coreapp"])
    assert "coreapp" in err.value.msg and "master, wacore, waweb" in err.value.msg


# --- Docker state: records, plan, comparison -----------------------------------------------

def captured_snapshot():
    """The snapshot of a real project (engine 20.10, compose v2.40.3), from the SDK's list+inspect."""
    data = json.loads(fixture("engine-20.10-project-v2.40.3.json"))
    containers = {}
    for summary in data["containers"]:
        rec = compose.container_record(summary, data["inspect"][summary["Id"]])
        containers[rec["name"]] = rec
    return {"containers": containers, "networks": ["wabiz-it-cap_default"], "volumes": []}


def test_container_record_from_captured_api_output():
    snap = captured_snapshot()
    web = snap["containers"]["wabiz-it-cap-web-1"]
    hashes = compose.parse_hashes(fixture("v2.40.3-config-hash.txt"))
    assert web["service"] == "web"
    assert web["state"] == "running"
    assert web["image"] == "wabiz/base:bookworm"
    assert web["image_id"].startswith("sha256:")
    assert web["config_hash"] == hashes["web"]  # the label compose wrote = what 'config --hash' prints
    assert web["health"] in ("starting", "healthy")
    assert len(web["ports"]) == 1 and web["ports"][0].startswith("127.0.0.1:") and web["ports"][0].endswith("->8000/tcp")
    assert snap["containers"]["wabiz-it-cap-worker-1"]["health"] is None


def desired_for(snap):
    hashes = dict((r["service"], r["config_hash"]) for r in snap["containers"].values())
    images = dict((r["service"], r["image_id"]) for r in snap["containers"].values())
    config = compose.parse_config(fixture("v2.40.3-config.json"), "json")
    return config, hashes, images


def test_plan_present_on_a_converged_project_is_empty():
    snap = captured_snapshot()
    config, hashes, images = desired_for(snap)
    assert compose.plan("present", snap, config, hashes, images, ["web", "worker"]) == []


def test_plan_present_new_config_hash_recreates_that_service_only():
    snap = captured_snapshot()
    config, hashes, images = desired_for(snap)
    hashes["web"] = "f" * 64
    actions = compose.plan("present", snap, config, hashes, images, ["web", "worker"])
    assert actions == [{"action": "recreate", "service": "web", "container": "wabiz-it-cap-web-1",
                        "detail": "configuration changed"}]


def test_plan_present_new_image_recreates():
    snap = captured_snapshot()
    config, hashes, images = desired_for(snap)
    images["worker"] = "sha256:" + "0" * 64
    actions = compose.plan("present", snap, config, hashes, images, ["web", "worker"])
    assert [(a["action"], a["service"], a["detail"]) for a in actions] == [("recreate", "worker", "image changed")]


def test_plan_present_stopped_container_is_started_and_missing_one_created():
    snap = captured_snapshot()
    config, hashes, images = desired_for(snap)
    snap["containers"]["wabiz-it-cap-web-1"]["state"] = "exited"
    del snap["containers"]["wabiz-it-cap-worker-1"]
    actions = compose.plan("present", snap, config, hashes, images, ["web", "worker"])
    assert [(a["action"], a["service"]) for a in actions] == [("start", "web"), ("create", "worker")]


def test_plan_present_missing_image_is_pulled():
    snap = {"containers": {}, "networks": [], "volumes": []}
    config, hashes = desired_for(captured_snapshot())[:2]
    actions = compose.plan("present", snap, config, hashes, {"web": None, "worker": None}, ["web"])
    assert [(a["action"], a["service"]) for a in actions] == [("pull", "web"), ("create", "web")]


def test_plan_restarted_restarts_running_containers():
    snap = captured_snapshot()
    config, hashes, images = desired_for(snap)
    actions = compose.plan("restarted", snap, config, hashes, images, ["web", "worker"])
    assert [(a["action"], a["service"]) for a in actions] == [("restart", "web"), ("restart", "worker")]


def test_plan_stopped_only_running_ones_in_scope():
    snap = captured_snapshot()
    config, hashes, images = desired_for(snap)
    snap["containers"]["wabiz-it-cap-worker-1"]["state"] = "exited"
    assert compose.plan("stopped", snap, config, hashes, images, ["web", "worker"]) == [
        {"action": "stop", "service": "web", "container": "wabiz-it-cap-web-1"}]
    assert compose.plan("stopped", snap, config, hashes, images, ["worker"]) == []


def test_plan_absent_whole_project_and_volumes():
    snap = captured_snapshot()
    snap["volumes"] = ["wabiz-it-cap_data"]
    config, hashes, images = desired_for(snap)
    keep = compose.plan("absent", snap, config, hashes, images, ["web", "worker"])
    wipe = compose.plan("absent", snap, config, hashes, images, ["web", "worker"], remove_volumes=True)
    assert [a["action"] for a in keep] == ["remove", "remove", "remove_network"]
    assert [a["action"] for a in wipe] == ["remove", "remove", "remove_network", "remove_volume"]
    assert compose.plan("absent", {"containers": {}, "networks": [], "volumes": ["v"]}, config, hashes,
                        images, ["web"], remove_volumes=False) == []


def test_plan_absent_subset_keeps_network():
    snap = captured_snapshot()
    config, hashes, images = desired_for(snap)
    actions = compose.plan("absent", snap, config, hashes, images, ["worker"], all_services=False)
    assert actions == [{"action": "remove", "service": "worker", "container": "wabiz-it-cap-worker-1"}]


def test_plan_orphans_removed_only_when_asked():
    snap = captured_snapshot()
    config, hashes, images = desired_for(snap)
    del config["worker"]
    assert compose.plan("present", snap, config, hashes, images, ["web"]) == []
    assert compose.plan("present", snap, config, hashes, images, ["web"], remove_orphans=True) == [
        {"action": "remove", "service": "worker", "container": "wabiz-it-cap-worker-1", "detail": "orphan"}]


def test_compare_same_state_is_no_change():
    snap = captured_snapshot()
    assert compose.compare(snap, copy.deepcopy(snap)) == []


def test_compare_reads_every_kind_of_change():
    before = captured_snapshot()
    after = copy.deepcopy(before)
    web, worker = after["containers"]["wabiz-it-cap-web-1"], after["containers"]["wabiz-it-cap-worker-1"]
    web["id"] = "new-id"
    worker["started_at"] = "2026-11-22T19:10:00.000000000Z"
    after["containers"]["wabiz-it-cap-extra-1"] = dict(web, name="wabiz-it-cap-extra-1", service="extra")
    after["volumes"] = ["wabiz-it-cap_data"]
    after["networks"] = []
    actions = [(a["action"], a.get("container") or a.get("detail")) for a in compose.compare(before, after)]
    assert actions == [
        ("create", "wabiz-it-cap-extra-1"),
        ("recreate", "wabiz-it-cap-web-1"),
        ("restart", "wabiz-it-cap-worker-1"),
        ("remove_network", "wabiz-it-cap_default"),
        ("create_volume", "wabiz-it-cap_data"),
    ]


def test_compare_start_stop_remove():
    before = captured_snapshot()
    after = copy.deepcopy(before)
    after["containers"]["wabiz-it-cap-web-1"]["state"] = "exited"
    del after["containers"]["wabiz-it-cap-worker-1"]
    assert [(a["action"], a["service"]) for a in compose.compare(before, after)] == [("stop", "web"), ("remove", "worker")]
    stopped, started = after, before
    assert [(a["action"], a["service"]) for a in compose.compare(stopped, started)][:2] == [("start", "web"), ("create", "worker")]


def test_diff_texts_name_each_container():
    snap = captured_snapshot()
    text = compose.summary_text(snap)
    assert "wabiz-it-cap-web-1 (service web): running" in text
    predicted = compose.predicted_text(snap, [{"action": "stop", "service": "web", "container": "wabiz-it-cap-web-1"}])
    assert "wabiz-it-cap-web-1 (service web): exited" in predicted


# --- waiting -------------------------------------------------------------------------------

def inspected(status, health=None, policy="no", code=0):
    state = {"Status": status, "ExitCode": code}
    if health:
        state["Health"] = {"Status": health}
    return {"State": state, "HostConfig": {"RestartPolicy": {"Name": policy}}}


@pytest.mark.parametrize(
    "data, why, recoverable",
    [
        (inspected("running"), None, True),
        (inspected("running", "healthy"), None, True),
        (inspected("running", "starting"), "is not healthy yet (starting)", True),
        (inspected("running", "unhealthy"), "is unhealthy", True),
        (inspected("exited", code=3), "exited with code 3 and has no restart policy", False),
        (inspected("restarting", policy="unless-stopped", code=1), "is restarting (exit code 1)", True),
        (inspected("exited", policy="always", code=1), "is exited (exit code 1)", True),
    ],
)
def test_not_ready(data, why, recoverable):
    assert compose.not_ready(data) == (why, recoverable)


class FakeDocker:
    def __init__(self, states):
        self.states = states  # list of per-poll {name: inspected}
        self.polls = 0

    def snapshot(self, project):
        current = self.states[min(self.polls, len(self.states) - 1)]
        self.polls += 1
        self.current = current
        return {"containers": dict((n, {"name": n, "id": n, "service": n.split("-")[1]}) for n in current),
                "networks": [], "volumes": []}

    def inspect(self, cid):
        return self.current[cid]

    def log_tail(self, cid, lines=20):
        return "fatal: cannot reach the database"


class Clock:
    def __init__(self):
        self.now = 0.0

    def time(self):
        return self.now

    def sleep(self, s):
        self.now += s


def test_wait_returns_once_healthy():
    fake = FakeDocker([{"p-web-1": inspected("running", "starting")}, {"p-web-1": inspected("running", "healthy")}])
    clock = Clock()
    compose.wait_until_up(fake, "p", ["web"], 30, sleep=clock.sleep, clock=clock.time)
    assert fake.polls == 4  # healthy at 1 s, and still at 2 s and 3 s (the settle time)


def test_wait_catches_a_container_that_dies_just_after_it_started():
    fake = FakeDocker([{"p-web-1": inspected("running")}, {"p-web-1": inspected("exited", code=3)}])
    clock = Clock()
    with pytest.raises(compose.ComposeError) as err:
        compose.wait_until_up(fake, "p", ["web"], 60, sleep=clock.sleep, clock=clock.time)
    assert "exited with code 3" in err.value.msg


def test_wait_timeout_names_the_container_and_its_log():
    fake = FakeDocker([{"p-web-1": inspected("running", "unhealthy")}])
    clock = Clock()
    with pytest.raises(compose.ComposeError) as err:
        compose.wait_until_up(fake, "p", ["web"], 5, sleep=clock.sleep, clock=clock.time)
    assert err.value.msg.startswith("container p-web-1 (service web) is unhealthy after 5s")
    assert "fatal: cannot reach the database" in err.value.msg
    assert err.value.details["container"] == "p-web-1"


def test_wait_gives_up_at_once_on_an_exited_container_without_restart_policy():
    fake = FakeDocker([{"p-web-1": inspected("exited", code=3)}])
    clock = Clock()
    with pytest.raises(compose.ComposeError) as err:
        compose.wait_until_up(fake, "p", ["web"], 60, sleep=clock.sleep, clock=clock.time)
    assert "exited with code 3" in err.value.msg
    assert clock.now == 0  # did not sit out the timeout


def test_wait_for_a_service_without_any_container():
    fake = FakeDocker([{}])
    clock = Clock()
    with pytest.raises(compose.ComposeError) as err:
        compose.wait_until_up(fake, "p", ["web"], 3, sleep=clock.sleep, clock=clock.time)
    assert "no container of service(s) web appeared within 3s" in err.value.msg


# --- option checks: in one place, before Docker is asked anything ------------------

class Failed(Exception):
    pass


class BareModule:
    """Only what run_compose_stack reaches before its first Docker call."""

    def __init__(self, params, check_mode=False):
        self.params = dict((k, v.get("default")) for k, v in compose.compose_argument_spec().items())
        self.params.update(params)
        self.check_mode = check_mode
        self.warnings = []

    def fail_json(self, **kw):
        raise Failed(kw)

    def warn(self, msg):
        self.warnings.append(msg)

    def run_command(self, *args, **kw):
        raise AssertionError(f"no command may run: {args!r}")

    def get_bin_path(self, *args, **kw):
        raise AssertionError("no CLI may be looked up")


@pytest.mark.parametrize("value", [0, -1, -120])
@pytest.mark.parametrize("check_mode", [False, True])
def test_wait_timeout_below_one_is_a_clear_error_before_anything(tmp_path, value, check_mode):
    # also in check mode on a fresh host (project_src missing): a dry run must judge the options too
    module = BareModule({"project_src": str(tmp_path / "not-yet"), "wait_timeout": value}, check_mode=check_mode)
    with pytest.raises(Failed) as err:
        compose.run_compose_stack(module)
    assert err.value.args[0]["msg"] == (
        f"wait_timeout: {value} is too small; it must be at least 1, the seconds to wait for the containers "
        "(default 120).")
    assert err.value.args[0]["changed"] is False and module.warnings == []


def test_validate_params_accepts_the_defaults_and_every_numeric_option_is_known():
    params = dict((k, v.get("default")) for k, v in compose.compose_argument_spec().items())
    compose.validate_params(params)
    numeric = {k for k, v in compose.compose_argument_spec().items() if v.get("type") in ("int", "float")}
    assert numeric == set(compose.NUMBER_OPTIONS)


# --- docker_host: an address both the Docker SDK and the compose CLI take, checked first ----------

HINT = "give unix:///var/run/docker.sock, tcp://HOST:PORT or ssh://USER@HOST"


@pytest.mark.parametrize("value, why", [
    ("http://[::1", "Invalid IPv6 URL"),  # urlparse's ValueError, once a traceback from DockerState
    ("tcp://127.0.0.1:99999", "Port out of range 0-65535"),
    ("tcp://127.0.0.1:0", "port 0 is no TCP port"),
    ("tcp://127.0.0.1", "no port; the engine's TCP port is usually 2375, or 2376 with TLS"),
    ("tcp://", "no host and port"),
    ("tcp://h:abc", "Port could not be cast to integer value as 'abc'"),
    ("http://127.0.0.1:2375",
     "the docker CLI does not take http://; use tcp://HOST:PORT, with DOCKER_TLS_VERIFY for TLS"),
    ("npipe:////./pipe/x", "npipe:// is a Windows named pipe; this module runs on POSIX hosts"),
    ("fd://", "unknown scheme 'fd'; an engine listens on unix://, tcp:// or ssh://"),
    ("tcp://h:2375?x=1", "it has a query, parameters or a fragment"),
    ("ssh://me@h/x", "ssh:// takes no path"),
    (" tcp://h:2375", "it holds white space or control characters"),
])
@pytest.mark.parametrize("check_mode", [False, True])
def test_bad_docker_host_is_a_clear_error_before_anything(tmp_path, value, why, check_mode):
    # BareModule fails the test if a command runs or a CLI is looked up: nothing is read or changed
    module = BareModule({"project_src": str(tmp_path), "docker_host": value}, check_mode=check_mode)
    with pytest.raises(Failed) as err:
        compose.run_compose_stack(module)
    assert err.value.args[0]["msg"] == f"docker_host {value!r} is not a Docker engine address ({why}): {HINT}"
    assert err.value.args[0]["changed"] is False and err.value.args[0]["commands"] == []
    assert list(tmp_path.iterdir()) == []


def test_bad_docker_host_password_is_not_shown():
    with pytest.raises(compose.ComposeError) as err:
        compose.validate_params({"docker_host": "tcp://me:s3cret@h:2375"})
    assert err.value.msg == ("docker_host 'tcp://me:***@h:2375' is not a Docker engine address (it holds a password, "
                             f"which the engine does not take): {HINT}")


@pytest.mark.parametrize("value", [None, "", "unix:///var/run/docker.sock", "unix://", "unix://var/run/docker.sock",
                                   "tcp://10.0.0.5:2375", "tcp://[::1]:2376", "tcp://:2375", "10.0.0.5:2375",
                                   "ssh://nobody@127.0.0.1:1", "ssh://host"])
def test_docker_host_that_both_sdk_and_cli_take_is_accepted(value):
    assert compose.docker_host_problem(value) is None
    compose.validate_params({"docker_host": value, "wait_timeout": 1})


@pytest.mark.parametrize("value", ["http://[::1", "tcp://127.0.0.1:99999", "tcp://127.0.0.1:0", "tcp://"])
def test_docker_state_turns_a_bad_address_into_a_compose_error(value):
    # the root of the traceback: docker.APIClient -> parse_host raised ValueError / DockerException
    pytest.importorskip("docker")
    with pytest.raises(compose.ComposeError) as err:
        compose.DockerState(value, timeout=1)
    assert err.value.msg.startswith(f"docker_host {value!r} is not a Docker engine address (")
    assert err.value.msg.endswith(HINT)


def test_docker_state_names_a_bad_docker_host_variable(monkeypatch):
    pytest.importorskip("docker")
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:99999")
    with pytest.raises(compose.ComposeError) as err:
        compose.DockerState(None, timeout=1)
    assert err.value.msg == (
        f"DOCKER_HOST 'tcp://127.0.0.1:99999' is not a Docker engine address (Port out of range 0-65535): {HINT}")


# --- a Docker engine that does not answer: bounded by wait_timeout ---------------------------------

@pytest.mark.parametrize("wait_timeout, seconds", [(None, 60), (1, 5), (5, 5), (7, 7), (60, 60), (120, 60), (3600, 60)])
def test_api_timeout_follows_wait_timeout_within_5_and_60(wait_timeout, seconds):
    assert compose.api_timeout(wait_timeout) == seconds


def answer_version(conn):
    """One engine answer: GET .../version as an engine gives it, then nothing else."""
    try:
        request = conn.recv(65536)
        if request.split(b" ")[1].split(b"?")[0].endswith(b"/version"):
            body = b'{"ApiVersion": "1.41", "Version": "20.10.0"}'
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                         b"Connection: close\r\n\r\n%s" % (len(body), body))
            conn.close()
    except (OSError, IndexError):
        pass


@pytest.fixture
def silent_engine():
    engines = []

    def make(version=False):
        engines.append(Listener("silent", handle=answer_version if version else None))
        return engines[-1]

    yield make
    for engine in engines:
        engine.close()


class ModuleWithCli(BareModule):
    """Reaches Docker: the compose CLI is found (a v2 plugin that answers 'version'), nothing else runs."""

    def __init__(self, params, check_mode=False):
        super().__init__(params, check_mode)
        self.commands = []

    def run_command(self, argv, **kw):
        self.commands.append(argv)
        if argv[-2:] == ["version", "--short"]:
            return 0, "2.40.3\n", ""
        raise AssertionError(f"only 'version' may run: {argv!r}")

    def get_bin_path(self, name, *args, **kw):
        return "/usr/bin/docker" if name == "docker" else None


@pytest.mark.parametrize("check_mode", [False, True])
def test_silent_docker_engine_fails_within_wait_timeout_plus_a_few_seconds(tmp_path, silent_engine, check_mode):
    # Not the Docker SDK's fixed 60 s per call: that would hang far past a short wait_timeout.
    pytest.importorskip("docker")
    engine = silent_engine()
    (tmp_path / "docker-compose.yml").write_text("services:\n  app:\n    image: busybox\n")
    address = f"tcp://127.0.0.1:{engine.port}"
    module = ModuleWithCli({"project_src": str(tmp_path), "docker_host": address, "wait_timeout": 1},
                           check_mode=check_mode)
    started = time.monotonic()
    with pytest.raises(Failed) as err:
        compose.run_compose_stack(module)
    took = time.monotonic() - started
    assert 4 <= took < 1 + 4 + 3  # api_timeout(1) is 5 s
    assert err.value.args[0]["msg"] == (
        f"the Docker engine at {address} did not answer within 5 s: check that docker_host (or DOCKER_HOST) names a "
        "running Docker engine, or raise wait_timeout if it is only slow (each Docker API call waits wait_timeout "
        "seconds, at least 5 and at most 60).")
    assert err.value.args[0]["changed"] is False and err.value.args[0]["commands"] == []
    assert module.commands == [["/usr/bin/docker", "compose", "version", "--short"]]


def test_engine_that_goes_silent_after_its_version_is_a_compose_error_not_a_traceback(silent_engine):
    # /version answers (the client is made), then the container list never does: requests' ReadTimeout
    # from an API call, which the Docker SDK does not wrap.
    pytest.importorskip("docker")
    engine = silent_engine(version=True)
    state = compose.DockerState(f"tcp://127.0.0.1:{engine.port}", timeout=1)
    started = time.monotonic()
    with pytest.raises(compose.ComposeError) as err:
        state.snapshot("p")
    assert time.monotonic() - started < 1 + 3
    assert err.value.msg.startswith(f"the Docker engine at tcp://127.0.0.1:{engine.port} did not answer within 1 s: ")
    with pytest.raises(compose.ComposeError):
        state.image_id("busybox")
    assert state.log_tail("abc").startswith("(no log: ")


def test_a_dry_run_on_a_host_without_the_docker_sdk_reports_the_stack_to_be_started(tmp_path, monkeypatch):
    """Check mode on a fresh host: the SDK and the project's files are what earlier (unrun) tasks
    would install and write, so the stack is reported as to be started, not failed."""
    monkeypatch.setattr(compose, "HAS_DOCKER", False)
    module = BareModule({"project_src": str(tmp_path / "not-yet"), "files": ["multiconnect-master.yml"]},
                        check_mode=True)
    result = compose.run_compose_stack(module)
    assert result["changed"] is True and result["files_missing"][0] == str(tmp_path / "not-yet")
    assert module.warnings and "does not exist yet" in module.warnings[0]


def test_a_real_run_without_the_docker_sdk_is_refused_by_name(tmp_path, monkeypatch):
    monkeypatch.setattr(compose, "HAS_DOCKER", False)
    (tmp_path / "multiconnect-master.yml").write_text("services: {}\n")
    module = BareModule({"project_src": str(tmp_path), "files": ["multiconnect-master.yml"]})
    with pytest.raises(Failed) as err:
        compose.run_compose_stack(module)
    assert "docker (the Docker SDK for Python)" in err.value.args[0]["msg"]
