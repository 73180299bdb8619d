"""Deploy cost: site.yml cold on fresh testbed machines (images present) and re-run, against
the floor measured in the same run: plain ``docker compose up -d`` of the same compose files on
every node host at once (after ``down``), and the same until the cluster serves again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .cluster import PlaybookRun, Testbed, mitogen_env, playbook
from .common import pyplot, save_figure, say


def run(bed: Testbed, extra: dict[str, Any] | None = None, quick: bool = False) -> dict[str, Any]:
    """Measure on a testbed that was just brought up (nothing deployed yet); ``extra``: extra vars.

    ``quick`` (make test) leaves out the mitogen re-run and the site.yml run after the floor: both
    are further site.yml runs of a minute each, and the full bench keeps them."""
    say("deploy: site.yml on fresh machines")
    cold = playbook("site", extra)
    healthy_after_cold = bed.wait_healthy()
    say(f"deploy: cold {cold.seconds} s ({cold.changed} changed); re-run")
    rerun = playbook("site", extra)
    mitogen = None
    if not quick:
        say(f"deploy: re-run {rerun.seconds} s ({rerun.changed} changed); re-run under mitogen's linear strategy")
        mitogen = playbook("site", extra, check=False, env=mitogen_env())
    projects = bed.compose_projects()
    say("deploy: floor: docker compose down, then up -d, on every node host at once")
    down_s = bed.compose_all(projects, "down")
    up_s = bed.compose_all(projects, "up", "-d")
    serving_s = bed.wait_healthy()
    after_floor = None if quick else playbook("site", extra)
    floor_healthy = round(up_s + serving_s, 2)
    result = {
        "site_cold_s": cold.seconds, "site_cold_changed": cold.changed,
        "healthy_after_cold_s": healthy_after_cold,
        "site_rerun_s": rerun.seconds, "site_rerun_changed": rerun.changed,
        "floor_compose_down_s": down_s, "floor_compose_up_s": up_s, "floor_until_serving_s": floor_healthy,
        "site_after_floor_changed": after_floor.changed if after_floor else None,
        "ratio_cold_vs_compose_up": round(cold.seconds / up_s, 2),
        "ratio_cold_vs_compose_until_serving": round(cold.seconds / floor_healthy, 2),
        "ratio_rerun_vs_compose_up": round(rerun.seconds / up_s, 2),
        "hosts": sorted(projects),
        # How Ansible reached the machines (inventories/testbed): SSH as an ordinary user, sudo.
        "transport": "ssh, ordinary user with sudo, pipelining",
        "connection": "ssh",
        "site_cold_roles_s": cold.roles, "site_rerun_roles_s": rerun.roles,
        # The same re-run under mitogen's strategy (PyPI mitogen), measured for comparison only:
        # the tests run over plain SSH, so that is what the README recommends.
        "mitogen": _mitogen_figures(mitogen, rerun.seconds) if mitogen else None,
        "problems": [f"the re-run changed {rerun.changed} task(s)"] * bool(rerun.changed)
        + ([f"site.yml after the floor changed {after_floor.changed} task(s)"] if after_floor and after_floor.changed else []),
    }
    say(f"deploy: cold {cold.seconds} s, re-run {rerun.seconds} s ({rerun.changed} changed), compose up -d "
        f"{up_s} s (serving after {floor_healthy} s): ratio {result['ratio_cold_vs_compose_up']}")
    return result


def _mitogen_figures(run: PlaybookRun, ssh_rerun_s: float) -> dict[str, Any]:
    from importlib.metadata import version

    worked = run.failed == 0 and "PLAY RECAP" in run.output
    return {
        "version": version("mitogen"), "strategy": "mitogen_linear", "worked": worked,
        "site_rerun_s": run.seconds, "site_rerun_changed": run.changed, "site_rerun_failed": run.failed,
        "site_rerun_roles_s": run.roles,
        "ratio_vs_ssh_rerun": round(run.seconds / ssh_rerun_s, 2) if worked else None,
        "error_tail": None if worked else run.output[-1500:],
    }


def plot(res: dict[str, Any], name: str = "deploy") -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.6))
    labels = ["site.yml cold", "site.yml re-run", "compose up -d\n(every host at once)", "compose up -d\nuntil serving"]
    values = [res["site_cold_s"], res["site_rerun_s"], res["floor_compose_up_s"], res["floor_until_serving_s"]]
    bars = ax.barh(labels, values, color=["tab:blue", "tab:cyan", "tab:gray", "tab:gray"])
    for bar, v in zip(bars, values, strict=True):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {v:.1f} s", va="center", fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel("seconds (testbed: 7 node hosts, MariaDB host, NFS host)")
    ax.set_title(f"deploy cost: site.yml cold = {res['ratio_cold_vs_compose_up']}x compose up -d, "
                 f"re-run {res['site_rerun_changed']} changed")
    ax.set_xlim(0, max(values) * 1.18)
    return save_figure(fig, name)
