# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Client-side measurement of a failover drill (standard library only; matplotlib for the PNG).

``run`` sends messages through the API without pause and polls who owns each shard (at most
every second) for a fixed time, then reads back every acknowledged message; ``analyze`` turns
that record and the moment the fault hit into downtime, ownership and loss figures, a JSON
report and a PNG timeline. Downtime is measured per shard (the shard of each request's
recipient, ``crc32(to) % shards`` with the shard count from ``GET /v1/account/shards``), so a
failure of one shard's owner is not hidden by the other shards' successes; ``downtime_s`` is
the worst shard's.

    WABIZ_DRILL_PASSWORD=... drill_probe.py run --api https://10.0.0.5:9090 --duration 60 --out rec.json
    drill_probe.py analyze --record rec.json --fault-at EPOCH --bound 12 --out report.json --png t.png
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import ssl
import sys
import threading
import time
import urllib.error
import urllib.request
import zlib


def tls_context(insecure: bool, ca: str | None) -> ssl.SSLContext:
    """Verify the webapps' certificates (with the CA file ``ca``, else the system's CAs) unless
    ``insecure``, which the drill passes only when the inventory sets wabiz_api_validate_certs false."""
    if insecure and ca:
        raise SystemExit("give --insecure or --ca, not both")
    if insecure:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    if ca and not os.path.isfile(ca):
        raise SystemExit(f"--ca {ca}: no such file (the CA that signed the webapps' certificates)")
    return ssl.create_default_context(cafile=ca or None)


class Api:
    """A small client of the webapp's REST API (Bearer login, first-login password change)."""

    def __init__(self, url: str, user: str, password: str, initial_password: str | None, insecure: bool,
                 ca: str | None, timeout: float):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.ctx = tls_context(insecure, ca)
        self.token = self._login(user, password, initial_password)

    def call(self, method: str, path: str, body: object = None, headers: dict | None = None,
             timeout: float | None = None) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        if "Authorization" not in hdrs and getattr(self, "token", None):
            hdrs["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=timeout or self.timeout) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, json.loads(exc.read() or b"{}")
            except ValueError:
                return exc.code, {}
        except (OSError, ValueError) as exc:
            return 0, {"error": str(exc)}

    def _login(self, user: str, password: str, initial_password: str | None) -> str:
        """Log in with ``password``; on a fresh cluster (first login) set it from ``initial_password``."""

        def basic(pw: str) -> dict:
            return {"Authorization": "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()}

        status, body = self.call("POST", "/v1/users/login", {}, basic(password))
        if status == 401 and initial_password:
            status, body = self.call("POST", "/v1/users/login", {"new_password": password}, basic(initial_password))
        if status != 200:
            raise SystemExit(f"login to {self.url} as {user} failed ({status}): {body.get('errors', body)}")
        return body["users"][0]["token"]


class Apis:
    """Several webapps behind one client, like a load balancer: a request fails only when every
    webapp fails it; the webapp that answered last is tried first."""

    def __init__(self, apis: list[Api]):
        self.apis = apis
        self.current = 0
        # Webapps tried by this thread's last call (a retried POST may store a message twice).
        self._last = threading.local()

    @property
    def attempts(self) -> int:
        return getattr(self._last, "attempts", 0)

    def call(self, method: str, path: str, body: object = None, timeout: float | None = None) -> tuple[int, dict, str]:
        status, answer = 0, {}
        for k in range(len(self.apis)):
            api = self.apis[(self.current + k) % len(self.apis)]
            self._last.attempts = k + 1
            status, answer = api.call(method, path, body, timeout=timeout)
            if status != 0 and status < 500:
                self.current = (self.current + k) % len(self.apis)
                return status, answer, api.url
        return status, answer, ""


def shard_for(recipient: str, shards: int) -> int:
    """The stand-in's routing (cluster_schema.shard_for): crc32(recipient) % shards."""
    return zlib.crc32(recipient.encode("utf-8")) % max(1, int(shards))


def shard_count(api: Apis) -> int | None:
    """``GET /v1/account/shards`` -> {"account": {"shards": N}}; None when it does not answer."""
    status, body, _url = api.call("GET", "/v1/account/shards")
    shards = (body.get("account") or {}).get("shards") if status == 200 and isinstance(body, dict) else None
    return shards if isinstance(shards, int) and not isinstance(shards, bool) and shards >= 1 else None


def run(args: argparse.Namespace) -> int:
    api = Apis([_login_from_env(args, url) for url in args.api])
    _status, settings, _url = api.call("GET", "/v1/settings/application")
    shards = shard_count(api)
    record: dict = {"api": args.api, "started": time.time(), "requests": [], "polls": [], "shards": shards,
                    "tag": args.tag,
                    "settings": (settings.get("settings") or {}).get("application", {})}
    stop = threading.Event()
    # When every shard that failed has served again (--stop-after-recovery): a success on
    # another shard is no recovery of the failed one.
    recovered_at: list[float] = []

    def sender() -> None:
        n = 0
        failed_once = False
        down: set = set()  # shards whose last request failed
        while not stop.is_set():
            n += 1
            t0 = time.time()
            to = f"1555{n % 997:07d}"
            body = f"drill {args.tag} {n}" if args.tag else f"drill {n}"
            status, body, url = api.call("POST", "/v1/messages",
                                         {"to": to, "type": "text", "text": {"body": body}})
            ok = status in (200, 201)
            msg_id = (body.get("messages") or [{}])[0].get("id") if ok else None
            shard = shard_for(to, shards) if shards else None
            record["requests"].append({"t": t0, "dt": round(time.time() - t0, 4), "ok": ok, "status": status,
                                       "id": msg_id, "via": url, "to": to, "shard": shard, "n": n,
                                       "attempts": api.attempts})
            if not ok:
                failed_once = True
                down.add(shard)
                time.sleep(args.retry_pause)
            else:
                down.discard(shard)
                if failed_once and not down and not recovered_at:
                    recovered_at.append(time.time())

    def poller() -> None:
        while not stop.is_set():
            t0 = time.time()
            # Up to twice the poll period: a slow answer still counts, and the gap check catches it.
            status, body, _url = api.call("GET", "/v1/support", timeout=min(args.timeout, max(1.0, 2 * args.poll)))
            owners: dict[str, list[str]] = {}
            roles: dict[str, str] = {}
            for node, info in support_nodes(body).items():
                roles[node] = info.get("role", "?")
                for shard in info.get("shards") or []:
                    owners.setdefault(str(shard), []).append(node)
            record["polls"].append({"t": t0, "ok": status == 200, "owners": owners, "roles": roles})
            stop.wait(max(0.0, args.poll - (time.time() - t0)))

    threads = [threading.Thread(target=sender, daemon=True), threading.Thread(target=poller, daemon=True)]
    for t in threads:
        t.start()
    deadline = time.time() + args.duration
    while time.time() < deadline and not (args.stop_file and os.path.exists(args.stop_file)):
        if args.stop_after_recovery is not None and recovered_at:
            deadline = min(deadline, recovered_at[0] + args.stop_after_recovery)
        stop.wait(0.2)
    stop.set()
    for t in threads:
        t.join(timeout=args.timeout + 1)
    acked = [r["id"] for r in record["requests"] if r["ok"] and r["id"]]
    missing, loss_check = ([], "skipped") if args.no_read_back else read_back(api, acked)
    record.update(ended=time.time(), acknowledged=len(acked), lost=missing, loss_check=loss_check)
    with open(args.out, "w") as fh:
        json.dump(record, fh)
    print(json.dumps({"requests": len(record["requests"]), "acknowledged": len(acked), "lost": len(missing),
                      "loss_check": loss_check}))
    return 0


def support_nodes(body: dict) -> dict[str, dict]:
    """``GET /v1/support``'s nodes: {"support": {"HOST:CID": {"role", "shards", ...}}}."""
    support = body.get("support") if isinstance(body, dict) else None
    return {node: info for node, info in (support or {}).items() if isinstance(info, dict)}


def read_back(api: Apis, acked: list[str]) -> tuple[list[str], str]:
    """The loss check: every acknowledged message must be readable after the drill. The public API
    has no message read-back; the stand-in offers ``GET /v1/messages/{id}`` as an extension. Where
    that path does not exist (404 "URL path not found", or 405) nothing can be checked, and the
    record says so instead of counting every message as lost."""
    missing: list[str] = []
    for n, msg_id in enumerate(acked):
        for _attempt in range(5):
            status, body, _url = api.call("GET", f"/v1/messages/{msg_id}")
            if status == 200:
                break
            details = " ".join(str(e.get("details", "")) for e in (body.get("errors") or []) if isinstance(e, dict))
            if n == 0 and (status == 405 or (status == 404 and "URL path not found" in details)):
                return [], "unavailable"
            time.sleep(1)
        else:
            missing.append(msg_id)
    return missing, "read_back"


def _login_from_env(args: argparse.Namespace, url: str) -> Api:
    password = os.environ.get("WABIZ_DRILL_PASSWORD")
    if not password:
        raise SystemExit("set WABIZ_DRILL_PASSWORD to the admin password (kept out of the process list)")
    return Api(url, args.user, password, os.environ.get("WABIZ_DRILL_INITIAL_PASSWORD", "secret"),
               args.insecure, args.ca, args.timeout)


def plan(args: argparse.Namespace) -> int:
    """The fault's targets (node id, address, container) and the failover bound from the settings."""
    api = _login_from_env(args, args.api[0])
    status, health = api.call("GET", "/v1/health")
    if status != 200:
        raise SystemExit(f"GET /v1/health answered {status}: {health}")
    _status, support = api.call("GET", "/v1/support")
    _status, settings = api.call("GET", "/v1/settings/application")
    app = (settings.get("settings") or {}).get("application", {})
    nodes = health.get("health") or {}
    owners = {node for node, info in support_nodes(support).items() if info.get("shards")}
    if args.fault in ("kill_owner", "pause_owner", "partition_owner_database", "partition_owner_masters"):
        ids = sorted(n for n in owners if nodes.get(n, {}).get("role") == "coreapp")[:1]
    elif args.fault == "stop_primary_master":
        ids = [n for n, i in nodes.items() if i.get("role") == "primary_master"]
    else:
        ids = sorted(n for n, i in nodes.items() if i.get("role") in ("primary_master", "secondary_master"))
    if not ids:
        raise SystemExit(f"no target for {args.fault}: the cluster shows {nodes}")

    def where(n: str) -> dict[str, str]:
        return {"node": n, "address": n.rsplit(":", 1)[0], "container": n.rsplit(":", 1)[1]}

    targets = [where(n) for n in ids]
    # The masters that are not primary: a one-master drill stops them first (DB mode).
    secondaries = [where(n) for n, i in sorted(nodes.items()) if i.get("role") == "secondary_master"]
    # The owner is declared dead once both masters' freshest answer is unhealthy_interval old
    # (at the deadline, not at the next cycle); the new owner then serves within about a second.
    bound = float(app.get("unhealthy_interval", 30)) + 1.0
    primaries = [where(n) for n, i in sorted(nodes.items()) if i.get("role") == "primary_master"]
    print(json.dumps({"targets": targets, "primary_masters": primaries, "secondary_masters": secondaries,
                      "bound_s": bound, "settings": app}))
    return 0


def analyze_record(record: dict, fault_at: float, bound: float) -> dict:
    """Downtime, ownership changes and the safety checks of one drill."""
    reqs = sorted(record["requests"], key=lambda r: r["t"])
    after = [r for r in reqs if r["t"] >= fault_at]
    # Per shard (requests without a shard, e.g. an older record: one group, as before).
    by_shard: dict = {}
    for r in after:
        by_shard.setdefault(r.get("shard"), []).append(r)
    per_shard = {key: _downtime(rs) for key, rs in by_shard.items()}
    worst = max(per_shard, key=lambda k: per_shard[k][1], default=None)
    first_fail, downtime = per_shard[worst] if worst in per_shard else (None, 0.0)
    polls = sorted(record["polls"], key=lambda p: p["t"])
    double = [{"t": p["t"], "shard": s, "owners": o} for p in polls for s, o in p["owners"].items() if len(o) > 1]
    before = next((p["owners"] for p in reversed(polls) if p["t"] < fault_at and p["ok"]), {})
    moved = {}
    for p in polls:
        if p["t"] < fault_at or not p["ok"]:
            continue
        for shard, owners in p["owners"].items():
            if shard not in moved and owners and owners != before.get(shard):
                moved[shard] = {"at": p["t"], "after_fault": round(p["t"] - fault_at, 3), "owner": owners[0],
                                "previous": (before.get(shard) or [None])[0]}
    gaps = [p2["t"] - p1["t"] for p1, p2 in zip(polls, polls[1:], strict=False)]
    primary_before = next((sorted(n for n, r in p["roles"].items() if r == "primary_master")
                           for p in reversed(polls) if p["t"] < fault_at and p["ok"]), [])
    new_primary = next(({"at": p["t"], "after_fault": round(p["t"] - fault_at, 3), "node": n}
                        for p in polls if p["t"] >= fault_at and p["ok"]
                        for n, r in p["roles"].items() if r == "primary_master" and n not in primary_before), None)
    return {
        "fault_at": fault_at,
        "requests": len(reqs),
        "acknowledged": record.get("acknowledged", sum(1 for r in reqs if r["ok"])),
        "failed": sum(1 for r in reqs if not r["ok"]),
        "lost": record.get("lost", []),
        "loss_check": record.get("loss_check", "read_back"),
        "downtime_s": None if downtime == float("inf") else round(downtime, 3),
        "recovered": downtime != float("inf"),
        "shards": record.get("shards"),
        "downtime_by_shard_s": {str(k): (None if d == float("inf") else round(d, 3))
                                for k, (_f, d) in sorted(per_shard.items(), key=lambda kv: str(kv[0]))
                                if k is not None},
        "worst_shard": None if worst is None or not downtime else str(worst),
        "downtime_from": first_fail,
        "bound_s": bound,
        "within_bound": downtime <= bound,
        "owner_changes": moved,
        "double_owner_moments": double,
        "max_poll_gap_s": round(max(gaps), 3) if gaps else None,
        "primary_master_before": primary_before,
        "new_primary_master": new_primary,
    }


def _downtime(reqs: list) -> tuple:
    """(start of the first failed request, downtime): from it to the end of the first successful
    request sent after it; (None, 0.0) without a failure, (start, inf) without a recovery."""
    first_fail = next((r for r in reqs if not r["ok"]), None)
    if first_fail is None:
        return None, 0.0
    back = next((r for r in reqs if r["ok"] and r["t"] > first_fail["t"]), None)
    return first_fail["t"], ((back["t"] + back["dt"]) - first_fail["t"]) if back else float("inf")


def verdict(report: dict, fault: str, pause: float, settings: dict) -> dict:
    """What the cluster promises for this fault, checked against the measured report."""
    failures = []
    if report["lost"]:
        failures.append(f"{len(report['lost'])} acknowledged message(s) were lost.")
    if report["double_owner_moments"]:
        failures.append(f"A shard had two owners at once {len(report['double_owner_moments'])} time(s).")
    if report["max_poll_gap_s"] is not None and report["max_poll_gap_s"] > 1.5:
        failures.append(f"The owner polls were {report['max_poll_gap_s']} s apart at worst (want <= 1 s).")
    no_failover_pause = fault == "pause_owner" and pause < (
        float(settings.get("unhealthy_interval", 30)) - float(settings.get("heartbeat_interval", 5)))
    if fault in ("kill_owner", "partition_owner_database") or (fault == "pause_owner" and not no_failover_pause):
        if not report["owner_changes"]:
            failures.append("No spare took over the shard.")
        if not report["recovered"]:
            failures.append("The API did not serve again before the drill ended.")
        elif not report["within_bound"]:
            failures.append(f"Downtime {report['downtime_s']} s exceeded the bound {report['bound_s']} s.")
    elif no_failover_pause:
        if report["owner_changes"]:
            failures.append(f"A pause of {pause} s (shorter than unhealthy - heartbeat) caused a failover.")
        if not report["recovered"]:
            failures.append("The API did not serve again after the pause.")
    elif fault == "partition_owner_masters" and not report["recovered"]:
        failures.append("The API did not serve again after the partition healed.")
    elif fault == "stop_primary_master":
        if not report["new_primary_master"]:
            failures.append("No secondary master took the lease.")
        if report["failed"]:
            failures.append(f"{report['failed']} API request(s) failed while the primary master was down.")
    elif fault == "stop_all_masters" and report["failed"]:
        failures.append(f"{report['failed']} API request(s) failed with every master down.")
    elif fault == "upgrade" and report["failed"]:
        failures.append(f"{report['failed']} API request(s) failed during the rolling upgrade.")
    summary = (f"{fault}: downtime {report['downtime_s']} s (bound {report['bound_s']} s), "
               f"{report['acknowledged']} acknowledged, {len(report['lost'])} lost, "
               f"{len(report['double_owner_moments'])} double-owner moments")
    return {"failures": failures, "summary": summary}


def draw(record: dict, report: dict, png: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    t0 = record["started"]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 5.5), sharex=True, gridspec_kw={"height_ratios": [1, 2]})
    ok = [(r["t"] - t0, r["dt"] * 1000) for r in record["requests"] if r["ok"]]
    bad = [(r["t"] - t0, r["dt"] * 1000) for r in record["requests"] if not r["ok"]]
    if ok:
        ax1.scatter(*zip(*ok, strict=False), s=4, c="tab:green", label="acknowledged")
    if bad:
        ax1.scatter(*zip(*bad, strict=False), s=8, c="tab:red", marker="x", label="failed")
    ax1.set_ylabel("request (ms)")
    ax1.legend(loc="upper right", fontsize=8)
    owners = sorted({o for p in record["polls"] for os_ in p["owners"].values() for o in os_})
    colors = {o: plt.cm.tab10(i % 10) for i, o in enumerate(owners)}
    shards = sorted({s for p in record["polls"] for s in p["owners"]}, key=int)
    polls = sorted(record["polls"], key=lambda p: p["t"])
    for row, shard in enumerate(shards):
        for p1, p2 in zip(polls, polls[1:] + [None], strict=False):
            end = (p2["t"] if p2 else record.get("ended", p1["t"] + 1)) - t0
            for k, owner in enumerate(p1["owners"].get(shard, [])):
                ax2.barh(row + 0.3 * k, end - (p1["t"] - t0), left=p1["t"] - t0, height=0.6,
                         color=colors[owner], edgecolor="none")
    ax2.set_yticks(range(len(shards)), [f"shard {s}" for s in shards])
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[o]) for o in owners]
    ax2.legend(handles, owners, loc="upper right", fontsize=7)
    for ax in (ax1, ax2):
        ax.axvline(report["fault_at"] - t0, color="black", linestyle="--", linewidth=1)
    if report["downtime_s"]:
        first_fail = report.get("downtime_from") or min(r["t"] for r in record["requests"]
                                                        if not r["ok"] and r["t"] >= report["fault_at"])
        ax1.axvspan(first_fail - t0, first_fail - t0 + report["downtime_s"], color="tab:red", alpha=0.15)
    ax2.set_xlabel("seconds since the drill started (dashed: fault)")
    fig.suptitle(f"failover drill: downtime {report['downtime_s']} s (bound {report['bound_s']} s), "
                 f"{report['acknowledged']} acknowledged, {len(report['lost'])} lost")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return True


def analyze(args: argparse.Namespace) -> int:
    with open(args.record) as fh:
        record = json.load(fh)
    report = analyze_record(record, args.fault_at, args.bound)
    report["fault"] = args.fault
    report["verdict"] = verdict(report, args.fault, args.pause, record.get("settings") or {})
    if args.png:
        report["png"] = args.png if draw(record, report, args.png) else None
    with open(args.out, "w") as fh:
        json.dump(report, fh, indent=2)
    print(json.dumps(report))
    return 0


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--duration", type=float, required=True)
    r.add_argument("--poll", type=float, default=0.5)
    r.add_argument("--retry-pause", type=float, default=0.05)
    r.add_argument("--stop-file", help="stop early once this file exists")
    r.add_argument("--stop-after-recovery", type=float, metavar="SECONDS",
                   help="stop this long after the first success that follows a failure")
    r.add_argument("--out", required=True)
    r.add_argument("--tag", default="", help="a word put in every message body ('drill TAG N'), to find this run's rows")
    r.add_argument("--no-read-back", action="store_true",
                   help="skip reading every acknowledged message back (the caller checks the database itself)")
    a = sub.add_parser("analyze")
    a.add_argument("--record", required=True)
    a.add_argument("--fault-at", type=float, required=True)
    a.add_argument("--bound", type=float, required=True)
    a.add_argument("--out", required=True)
    a.add_argument("--png")
    a.add_argument("--fault", default="kill_owner")
    a.add_argument("--pause", type=float, default=0.0)
    pl = sub.add_parser("plan")
    pl.add_argument("--fault", required=True,
                    choices=["kill_owner", "pause_owner", "stop_primary_master", "stop_all_masters",
                             "partition_owner_database", "partition_owner_masters"])
    for p in (r, pl):
        p.add_argument("--api", required=True, action="append", help="a webapp's URL; repeat for several")
        p.add_argument("--user", default="admin")
        p.add_argument("--insecure", action="store_true", help="do not verify TLS certificates (test clusters only)")
        p.add_argument("--ca", help="CA file to verify the webapps' certificates with (default: the system's CAs)")
        p.add_argument("--timeout", type=float, default=5.0)
    args = ap.parse_args(argv)
    return {"run": run, "analyze": analyze, "plan": plan}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
