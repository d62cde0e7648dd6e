"""Run the shell commands a document shows, as a reader would type them.

A document's fenced ``bash``/``sh`` blocks under one heading become one bash script, in order.
Lines that start a long-running server (`pweza up`, `pweza manager`, `pweza agent`: "in one
terminal...") run in the background, and the script goes on only once the server is ready, as a
reader goes on once the first terminal says so. Set-up lines (`pip install`, `make install`) are
left out: the suite runs inside that installation. Nothing else is rewritten: a command that
only works with a placeholder filled in, or in an order that cannot work, fails here.

Every script runs in a network namespace of its own (loopback only), so the documented default
ports 8080/9090/2112 are free and nothing can leave the machine; that needs root (`unshare`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_FENCE = re.compile(r"^```(\w*)\s*$")
_SETUP = re.compile(r"^(pip install|make install|\. \.venv/bin/activate|source \.venv/bin/activate)\b")
_SERVER = re.compile(r"(?:^|\s)pweza (up|manager|agent)\b")
# How long one server may take to be ready, and one script to finish (a bounded wait each).
READY_SECONDS = 180
SCRIPT_SECONDS = 420


def shell_blocks(document: Path, heading: str) -> list[str]:
    """The bash/sh blocks under `heading` (up to the next heading of the same or a higher level)."""
    lines = document.read_text().splitlines()
    level = len(heading) - len(heading.lstrip("#"))
    try:
        start = lines.index(heading)
    except ValueError:
        raise AssertionError(f"{document.name}: no heading {heading!r}") from None
    blocks: list[str] = []
    current: list[str] | None = None
    for line in lines[start + 1 :]:
        fence = _FENCE.match(line)
        if current is None:
            if re.match(rf"^#{{1,{level}}} ", line):
                break
            if fence and fence.group(1) in {"bash", "sh"}:
                current = []
        elif fence:
            blocks.append("\n".join(current))
            current = None
        else:
            current.append(line)
    assert blocks, f"{document.name}: no shell blocks under {heading!r}"
    return blocks


def commands(block: str) -> list[str]:
    """The block's commands, continuation lines joined; comment-only and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


_PRELUDE = textwrap.dedent(
    """\
    set -euo pipefail -m  # -m: each background server gets a process group of its own
    ip link set lo up
    __servers=()
    trap 'for p in "${__servers[@]}"; do kill -TERM -- "$p" 2>/dev/null || true; done; wait' EXIT
    __ready() {  # kind, log file: wait until that server says it can be used
        local kind=$1 log=$2 i
        for ((i = 0; i < %(ready)d * 5; i++)); do
            case $kind in
                up) grep -q "pweza is up" "$log" && return 0 ;;
                manager) python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:8080/health/ready', timeout=1)" \\
                    2>/dev/null && return 0 ;;
                agent) return 0 ;;  # the next command waits for it (a task is taken when it connects)
            esac
            sleep 0.2
        done
        echo "=== $kind not ready after %(ready)ds; its output:" >&2; cat "$log" >&2; return 1
    }
    """
)


@dataclass(frozen=True, slots=True)
class Transcript:
    returncode: int
    output: str
    logs: dict[str, str]

    def explain(self) -> str:
        servers = "\n".join(f"=== {name}\n{text}" for name, text in self.logs.items())
        return f"exit {self.returncode}\n{self.output}\n{servers}"


def to_script(blocks: list[str], log_dir: Path) -> str:
    lines = [_PRELUDE % {"ready": READY_SECONDS}]
    for number, command in enumerate(c for block in blocks for c in commands(block)):
        if _SETUP.match(command):
            continue
        lines.append(f"echo {shlex.quote('$ ' + command)}")
        server = _SERVER.search(command)
        if server and not command.rstrip().endswith("&"):
            log = log_dir / f"{number:02d}-{server.group(1)}.log"
            # A subshell of this script (it sees the reader's shell variables), in the background.
            lines.append(f"( {command}\n) >{shlex.quote(str(log))} 2>&1 &")
            lines.append(f"__servers+=($!); echo $! >>{shlex.quote(str(log_dir / 'pids'))}")
            lines.append(f"__ready {server.group(1)} {shlex.quote(str(log))}")
        else:
            lines.append(command)
    return "\n".join(lines) + "\n"


def skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "documented commands run in a network namespace of their own, which needs root (run the suite as root)"
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare and ip are needed (Debian: util-linux, iproute2)"
    return None


def run_documented(blocks: list[str], workdir: Path) -> Transcript:
    """Run the blocks as one reader would, in `workdir` with a fresh home, no PYTHONPATH."""
    workdir.mkdir(parents=True, exist_ok=True)
    for entry in ("examples",):
        link = workdir / entry
        if not link.exists():
            link.symlink_to(REPO / entry)
    log_dir = workdir / ".logs"
    log_dir.mkdir(exist_ok=True)
    script = workdir / ".script.sh"
    script.write_text(to_script(blocks, log_dir))
    home = workdir / ".home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "COLUMNS": "160",
    }
    try:
        done = subprocess.run(
            ["unshare", "--net", "--fork", "--kill-child", "bash", str(script)],
            cwd=workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=SCRIPT_SECONDS,
        )
        code, output = done.returncode, done.stdout
    except subprocess.TimeoutExpired as expired:  # subprocess.run killed the script: its trap did not run
        raw = expired.stdout or ""
        code, output = -1, (raw.decode() if isinstance(raw, bytes) else raw) + f"\n(timed out after {SCRIPT_SECONDS}s)"
    finally:
        _stop_servers(log_dir / "pids")
    logs = {path.name: path.read_text(errors="replace")[-6000:] for path in sorted(log_dir.glob("*.log"))}
    return Transcript(code, output, logs)


def _stop_servers(pids: Path) -> None:
    """Kill what a script started and left behind (a timed-out script cannot stop its servers)."""
    if not pids.exists():
        return
    for line in pids.read_text().split():
        with contextlib.suppress(ProcessLookupError, PermissionError, ValueError):
            os.killpg(int(line), 9)
