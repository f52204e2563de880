"""``python -m fuzz``: fuzz a target, or replay datagrams against a fresh one.

    python -m fuzz --target serve --way udp --datagrams 1000000 --seed 1
    python -m fuzz --target all --way all --datagrams 20000
    python -m fuzz replay --target serve --way udp 420244ca... 4502eb83...

Exit status 0 when every run ended with the server alive, answering its
probe correctly, with RSS growth under the limit and no traceback in its
log; 1 otherwise; 2 for usage errors.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from .runner import WAYS, Config, SetupError, replay_main, report, run, write_crash
from .targets import TARGETS, Certs, make_certs


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", choices=(*TARGETS, "all"), default="all")
    parser.add_argument("--way", choices=(*WAYS, "all"), default="udp")
    parser.add_argument(
        "--certs",
        type=Path,
        metavar="DIR",
        help="a folder made by 'libcoap-py cert init' (default: a fresh one per run)",
    )
    parser.add_argument("--batch", type=int, default=Config.batch, help="datagrams per batch")
    parser.add_argument(
        "--drain-ms",
        type=float,
        default=Config.drain_s * 1000,
        help="after each batch, read answers until none came for this long",
    )


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except (RuntimeError, SetupError) as exc:
        print(f"fuzz: {exc}", file=sys.stderr)
        return 2


def _main(argv: list[str] | None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    if args_list[:1] == ["replay"]:
        return _replay(args_list[1:])
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__)
    _common(parser)
    parser.add_argument("--seed", type=int, default=1, help="the stream's random seed")
    parser.add_argument("--datagrams", type=int, default=10_000, help="per target and way")
    parser.add_argument("--seconds", type=float, help="stop each run after this long")
    parser.add_argument("--probe-every", type=int, default=Config.probe_every)
    parser.add_argument("--warmup", type=int, default=Config.warmup, help="mutated datagrams")
    parser.add_argument("--rss-limit-kib", type=int, default=Config.rss_limit_kib)
    parser.add_argument("--no-shrink", action="store_true", help="do not shrink a crash window")
    parser.add_argument(
        "--crash-dir",
        type=Path,
        default=Path("fuzz-crashes"),
        help="where a crash's datagrams are written (default: %(default)s)",
    )
    args = parser.parse_args(args_list)
    ok = True
    with tempfile.TemporaryDirectory(prefix="libcoap-py-fuzz-certs-") as tmp:
        certs = _certs(args.certs, Path(tmp))
        for target in TARGETS if args.target == "all" else (args.target,):
            for way in WAYS if args.way == "all" else (args.way,):
                config = Config(
                    target=target,
                    way=way,
                    seed=args.seed,
                    datagrams=args.datagrams,
                    batch=args.batch,
                    drain_s=args.drain_ms / 1000,
                    probe_every=args.probe_every,
                    warmup=args.warmup,
                    rss_limit_kib=args.rss_limit_kib,
                    shrink=not args.no_shrink,
                    seconds=args.seconds,
                )
                result = run(config, certs, log=_log)
                write_crash(result, args.crash_dir)
                print(report(result), flush=True)
                ok = ok and result.ok
    return 0 if ok else 1


def _replay(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fuzz replay",
        description="Send datagrams (hex) to a fresh server, in order; exit 1 if it dies "
        "or stops answering its probe correctly.",
    )
    _common(parser)
    parser.add_argument("hex", nargs="*", help="datagrams in hex")
    parser.add_argument("--file", type=Path, help="datagrams in hex, one a line ('#' comments)")
    args = parser.parse_args(argv)
    hexes = list(args.hex)
    if args.file is not None:
        for line in args.file.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                hexes.append(line)
    if args.target == "all" or args.way == "all":
        parser.error("replay needs one --target and one --way")
    ok = True
    with tempfile.TemporaryDirectory(prefix="libcoap-py-fuzz-certs-") as tmp:
        certs = _certs(args.certs, Path(tmp))
        config = Config(
            target=args.target, way=args.way, batch=args.batch, drain_s=args.drain_ms / 1000
        )
        ok = replay_main(config, certs, hexes, log=_log)
    return 0 if ok else 1


def _certs(given: Path | None, tmp: Path) -> Certs:
    if given is not None:
        return Certs(given)
    return make_certs(tmp / "certs")


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
