"""User-space instructions per request, counted by valgrind's callgrind.

    python -I benchmarks/instructions.py [--small 1000] [--large 3000] [--before PYTHON]

Wall and CPU time on a shared 2-core VM move by 5-10% between runs; instruction
counts do not. Each contender (the C client, and libcoap-py's Session.request
and handler loop, see pyclient.py; then the send-in-handler shape of run.py, C and
Python, and the handler loop sending the same PDU, with its Uri-Path, from outside
the handler) makes ``small`` and then ``large`` sequential CON
GETs to coap-server-notls under callgrind, with the same warm-up;
``(Ir(large) - Ir(small)) / (large - small)`` is what one request costs, start-up
and warm-up cancelled out. What the kernel does (the system calls, the same for
every contender) is not counted. Needs valgrind (``sudo apt install valgrind``);
each run is some 50 times slower than without it. ``--before PYTHON`` also counts
the Python contenders with that interpreter's libcoap_py (another build of the
package, e.g. an older commit's, installed in its own virtual environment), as
``... (before)``.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import IN_HANDLER_PATH, Server, build_cclient, free_port_pair  # noqa: E402

# name: (pyclient API, or "C" for cclient; extra options)
PATH = ["-P", IN_HANDLER_PATH]
CONTENDERS: dict[str, tuple[str, list[str]]] = {
    "C": ("C", []),
    "request": ("request", []),
    "loop": ("loop", []),
    "C, send in handler": ("C", [*PATH, "-H"]),
    "loop, Uri-Path": ("loop", PATH),
    "loop, send in handler": ("inhandler", PATH),
}


def instructions(argv: list[str]) -> int:
    """Instructions callgrind counted for one run of ``argv``."""
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv],
        capture_output=True,
        text=True,
        timeout=600,
    )
    found = re.search(r"Collected\s*:\s*(\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"{argv[0]} failed under valgrind: {done.stderr[-1500:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=3000)
    parser.add_argument("--before", metavar="PYTHON", help="also count this libcoap_py")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind not found: sudo apt install valgrind")
    server_exe = shutil.which("coap-server-notls") or shutil.which("coap-server-openssl")
    if server_exe is None:
        raise SystemExit("coap-server-notls not found: sudo apt install libcoap3-bin")
    with tempfile.TemporaryDirectory() as work:
        cclient, _, _ = build_cclient(Path(work))
        port = free_port_pair()
        uri = f"coap://127.0.0.1:{port}"
        argv = [server_exe, "-A", "127.0.0.1", "-p", str(port)]
        sizes = (args.small, args.large)
        with Server(argv, port, Path(work) / "server.log"):
            print(f"instructions per sequential CON GET ({args.small} and {args.large} GETs)")
            for who, (api, extra) in CONTENDERS.items():
                runs = [(who, [str(cclient), "get", uri])]
                if api != "C":
                    pyclient = [str(HERE / "pyclient.py"), api, "get", uri]
                    runs = [(who, [sys.executable, "-I", *pyclient])]
                    if args.before:
                        runs.append((f"{who} (before)", [args.before, "-I", *pyclient]))
                for name, cmd in runs:
                    small, large = (
                        instructions([*cmd, str(n), "-w", "100", *extra]) for n in sizes
                    )
                    per = (large - small) / (args.large - args.small)
                    print(f"  {name:31s} {per:9,.0f}", flush=True)


if __name__ == "__main__":
    main()
