"""Running the collection's modules for real, fast, and judging each run.

A module runs as Ansible runs it on a host (``python MODULE.py ARGS.json``, the collection on
PYTHONPATH through .build/link) with a subprocess timeout: the run's own time budget plus a
margin. Every run is classified into one outcome and recorded for the session summary
(.build/properties-summary.json); the properties then assert on the outcome.

Outcomes, worst first: ``hang`` (killed past its budget), ``traceback`` (no JSON result, or an
exception in it), ``secret_leaked`` (a marker known by construction in any output, returned
value, diff or file other than the intended one), ``changed_on_failure`` (the throwaway dir or
the cluster differs after a failed run), ``accepted_invalid`` (a value the module's own
documentation rules out was accepted), ``clear_error``, ``ok``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
LINK = ROOT / ".build" / "link"
MODULES = ROOT / "plugins" / "modules"
VENV_BIN = Path(sys.executable).parent
MARGIN = 8.0  # seconds on top of a run's own budget before it counts as a hang

# One marker per session, inside every secret the suite hands to a module. It is random, long and
# alphanumeric (JSON escaping cannot split it, and Ansible's no_log masking of exact values does
# not hide a transformed copy, such as a repr() or a URL-encoded form, that still holds it).
MARKER = "Zq" + uuid.uuid4().hex[:14] + "Qz"


def secret(tag: str = "s") -> str:
    """A valid-looking secret that holds the marker (letters, digits and '-': safe everywhere)."""
    return f"{tag}-{MARKER}-{uuid.uuid4().hex[:6]}"


OUTCOMES = ("hang", "traceback", "secret_leaked", "changed_on_failure", "accepted_invalid", "clear_error", "ok")


class Recorder:
    """Every generated case of the session, by test and outcome."""

    def __init__(self) -> None:
        self.by_outcome: Counter[str] = Counter()
        self.by_test: dict[str, Counter] = defaultdict(Counter)
        self.examples: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.seconds = 0.0
        self.runs = 0
        self.current = "?"
        self.seen: set[tuple[str, str]] = set()

    def add(self, outcome: str, took: float, case: dict[str, Any], key: str = "") -> None:
        if key:  # Hypothesis replays a failing example to report it: count each input once
            if (self.current, key) in self.seen:
                return
            self.seen.add((self.current, key))
        self.by_outcome[outcome] += 1
        self.by_test[self.current][outcome] += 1
        self.by_test[self.current]["seconds"] += round(took, 2)
        self.seconds += took
        self.runs += 1
        if outcome not in ("ok", "clear_error") and len(self.examples[outcome]) < 25:
            self.examples[outcome].append({"test": self.current, **case})

    def summary(self) -> dict[str, Any]:
        return {"cases": self.runs, "module_seconds": round(self.seconds, 1),
                "by_outcome": {k: self.by_outcome.get(k, 0) for k in OUTCOMES},
                "by_test": {t: dict(c) for t, c in sorted(self.by_test.items())},
                "examples": dict(self.examples), "marker": MARKER}


RECORD = Recorder()


# --- the throwaway directory ------------------------------------------------------------------

def snapshot(root: Path, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every path under ``root``: type, mode, owner, content (files) or target (symlinks)."""
    out: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if rel in skip:
                continue
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISREG(st.st_mode):
                out[rel] = ("file", oct(st.st_mode), st.st_uid, st.st_gid, p.read_bytes())
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", oct(st.st_mode), st.st_uid, st.st_gid)
            else:
                out[rel] = ("other", oct(st.st_mode))
    return out


def snapshot_diff(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    diffs = []
    for k in sorted(set(before) | set(after)):
        if before.get(k) != after.get(k):
            if k not in before:
                diffs.append(f"created {k}")
            elif k not in after:
                diffs.append(f"removed {k}")
            else:
                b, a = before[k], after[k]
                what = "content" if b[0] == a[0] == "file" and b[4] != a[4] else "attributes"
                diffs.append(f"{what} of {k}: {b[:4] if b[0] != 'link' else b} -> {a[:4] if a[0] != 'link' else a}")
    return diffs


def files_holding(root: Path, needle: str, allowed: tuple[Path, ...] = ()) -> list[str]:
    hits = []
    allowed_s = {str(p) for p in allowed}
    for dirpath, _dirs, filenames in os.walk(root):
        for name in filenames:
            p = Path(dirpath) / name
            if str(p) in allowed_s or p.is_symlink() or not p.is_file():
                continue
            try:
                if needle.encode() in p.read_bytes():
                    hits.append(str(p.relative_to(root)))
            except OSError:
                pass
    return hits


# --- running a module ---------------------------------------------------------------------------

@dataclass
class Run:
    module: str
    args: dict[str, Any]
    check: bool
    diff: bool
    budget: float
    rc: int | None = None
    stdout: str = ""
    stderr: str = ""
    result: dict[str, Any] | None = None
    took: float = 0.0
    hung: bool = False
    problems: list[str] = field(default_factory=list)
    key: str = ""

    @property
    def failed(self) -> bool:
        return self.hung or self.result is None or bool(self.result.get("failed"))

    @property
    def msg(self) -> str:
        return str((self.result or {}).get("msg", ""))

    def traceback(self) -> str | None:
        if self.hung:
            return None
        if self.result is None:
            return f"no JSON result (rc {self.rc}): {self.stdout[-1500:]!r} {self.stderr[-1500:]!r}"
        for key in ("exception", "module_stdout", "module_stderr"):
            if self.result.get(key):
                return f"{key}: {str(self.result[key])[-1500:]}"
        if "Traceback (most recent call last)" in self.stdout + self.stderr:
            return f"Traceback in output: {(self.stdout + self.stderr)[-1500:]}"
        if self.failed and not self.msg.strip():
            return "failed without a message"
        return None

    def describe(self) -> str:
        return (f"{self.module} check={self.check} diff={self.diff} args={json.dumps(self.args, default=str)[:1500]}"
                f"\n  -> {f'HANG after {self.took:.1f}s' if self.hung else (self.msg[:600] or self._bare())}")

    def _bare(self) -> str:
        return "no JSON result" if self.result is None else "ok"


# Inputs that hung already: Hypothesis replays a failing example once more to report it, and a
# hang must not cost its budget twice (the key has the throwaway dir replaced by a placeholder).
_HUNG: dict[str, Run] = {}


def _hang_key(module: str, args: dict[str, Any], tmp: Path, check: bool) -> str:
    text = json.dumps(args, sort_keys=True, default=str).replace(str(tmp), "<tmp>")
    return module + str(check) + re.sub(r"\bprop[0-9a-f]{8}\b", "prop<id>", text)  # compose project names


def run_module(module: str, args: dict[str, Any], tmp: Path, check: bool = False, diff: bool = True,
               budget: float = 20.0, env: dict[str, str] | None = None) -> Run:
    """Run plugins/modules/MODULE.py with ``args``; killed (a hang) after ``budget`` + MARGIN seconds."""
    run = Run(module, args, check, diff, budget)
    key = run.key = _hang_key(module, args, tmp, check)
    if key in _HUNG:
        run.hung, run.took = True, _HUNG[key].took
        return run
    argfile = tmp / f".args-{uuid.uuid4().hex}.json"
    argfile.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {
        **args, "_ansible_check_mode": check, "_ansible_diff": diff, "_ansible_verbosity": 3,
        "_ansible_tmpdir": str(tmp)}}))
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    full_env.update({"PYTHONPATH": str(LINK), "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                     "LC_ALL": "C.UTF-8"})
    full_env.update(env or {})
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, str(MODULES / f"{module}.py"), str(argfile)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=full_env, cwd=str(tmp),
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=budget + MARGIN)
    except subprocess.TimeoutExpired:
        run.hung = True
        os.killpg(proc.pid, signal.SIGKILL)  # the module and anything it started (nfs-ls, compose, ...)
        out, err = proc.communicate()
    finally:
        argfile.unlink(missing_ok=True)
    run.took = time.monotonic() - started
    if run.hung:
        _HUNG[key] = run
    run.rc = proc.returncode
    run.stdout, run.stderr = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
    if not run.hung:
        try:
            parsed = json.loads(run.stdout)
            run.result = parsed if isinstance(parsed, dict) else None
        except ValueError:
            run.result = None
    return run


def judge(run: Run, *, before: Any = None, after: Any = None, secrets_root: Path | None = None,
          allowed_secret_files: tuple[Path, ...] = (), invalid: str | None = None,
          extra_state: tuple[Any, Any] | None = None) -> str:
    """Classify ``run`` (snapshots of the throwaway dir before and after; ``invalid``: why the
    input is documented as bad, when it is), record it, and return the outcome. The run's
    ``problems`` list says what each property saw."""
    outcome = None
    if run.hung:
        run.problems.append(f"hang: no result within its budget of {run.budget:.0f}s + {MARGIN:.0f}s margin")
        outcome = "hang"
    tb = run.traceback()
    if tb:
        run.problems.append(f"traceback: {tb}")
        outcome = outcome or "traceback"
    leaks = []
    for where, text in (("stdout", run.stdout), ("stderr", run.stderr)):
        if MARKER in text:
            i = text.index(MARKER)
            leaks.append(f"{where}: ...{text[max(0, i - 120):i + 60]!r}...")
    if secrets_root is not None:
        leaks += [f"file {f}" for f in files_holding(secrets_root, MARKER, allowed_secret_files)]
    if leaks:
        run.problems.append("secret leaked: " + "; ".join(leaks))
        outcome = outcome or "secret_leaked"
    if run.failed and not run.hung:
        changes = snapshot_diff(before, after) if before is not None else []
        if extra_state is not None and extra_state[0] != extra_state[1]:
            changes.append(f"cluster state: {extra_state[0]} -> {extra_state[1]}")
        if changes:
            run.problems.append("changed on failure: " + "; ".join(changes))
            outcome = outcome or "changed_on_failure"
    if invalid and not run.failed:
        run.problems.append(f"accepted a documented-invalid value ({invalid})")
        outcome = outcome or "accepted_invalid"
    outcome = outcome or ("clear_error" if run.failed else "ok")
    RECORD.add(outcome, run.took, {"module": run.module, "check": run.check, "args": _short_args(run.args),
                                   "problems": [p[:800] for p in run.problems]}, key=run.key)
    return outcome


def _short_args(args: dict[str, Any]) -> Any:
    text = json.dumps(args, default=str)
    return args if len(text) < 1500 else text[:1500] + "..."


def assert_clean(run: Run) -> None:
    """The property assertion: fails with every problem and the exact input."""
    if run.problems:
        raise AssertionError("; ".join(run.problems) + "\n  input: " + run.describe())


# --- throwaway listeners ------------------------------------------------------------------------

class Listener:
    """A TCP server on 127.0.0.1 that misbehaves in one way: ``silent`` (accepts, never answers),
    ``garbage`` (sends bytes that are no protocol, then waits), ``close`` (closes at once),
    ``html`` (an HTTP 200 with an HTML page to anything), ``refused`` (nothing listens)."""

    KINDS = ("silent", "garbage", "close", "html", "refused")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        if kind == "refused":
            self.sock.close()  # the port is free now: connecting is refused
            return
        self.sock.listen(128)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            if self.kind == "close":
                conn.close()
                return
            if self.kind == "garbage":
                conn.sendall(b"\x00\xff\xfe garbage \x17\x03\x03\x00\x02\x02\x28\r\n\r\n" * 3)
            elif self.kind == "html":
                conn.settimeout(5)
                try:
                    conn.recv(65536)
                except OSError:
                    pass
                body = b"<html><body><h1>It works!</h1></body></html>"
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n"
                             b"Connection: close\r\n\r\n%s" % (len(body), body))
                conn.close()
                return
            self.held.append(conn)  # silent and garbage: keep it open, say nothing more
            if len(self.held) > 200:
                self.held.pop(0).close()
        except OSError:
            pass

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
        for c in self.held:
            try:
                c.close()
            except OSError:
                pass
