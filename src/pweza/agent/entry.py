"""`python -m pweza.agent`: the agent's own command line, without the CLI's imports.

`pweza agent` loads the whole `pweza` command (typer, rich, the manager's settings...) only to
parse a few flags; an agent is started once per slot of a fleet, so this entry parses them with
argparse and imports no more than the agent needs. The flags are those of `pweza agent`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path


def _import_structlog_without_rich() -> None:
    """Import structlog while rich (and better_exceptions) look absent, then let them be.

    structlog.dev imports rich, when installed, for pretty tracebacks; JSON log lines never use
    them, and rich costs an idle agent about 5 MiB. A handler that imports rich still gets it."""
    hidden = [name for name in ("rich", "better_exceptions") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # None makes `import name` fail
    try:
        import structlog  # noqa: F401
    finally:
        for name in hidden:
            del sys.modules[name]


_import_structlog_without_rich()

import structlog  # noqa: E402

from pweza.agent.failover import parse_manager_addresses  # noqa: E402

EXIT_USAGE = 2


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(
        prog="python -m pweza.agent", description="Run an agent process that executes tasks of one pool."
    )
    parse.add_argument("--pool", required=True, help="pool to serve")
    parse.add_argument(
        "--manager", default="127.0.0.1:9090", help="manager gRPC HOST:PORT, or a comma-separated list of replicas"
    )
    parse.add_argument("--namespace", "-n", default="default")
    parse.add_argument("--token", default=os.environ.get("PWEZA_TOKEN"), help="agent token [env PWEZA_TOKEN]")
    parse.add_argument("--agent-id", help="stable id (default: random)")
    parse.add_argument("--concurrency", type=int, help="override the template's")
    parse.add_argument("--tls-ca", type=Path, help="CA bundle: use TLS to the manager")
    parse.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"))
    return parse


def configure_logging(level: str) -> None:
    """JSON lines on stderr, as every pweza process writes them (see `pweza.cli.logs`)."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    logging.basicConfig(level=numeric, stream=sys.stderr, format="%(message)s")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        parse_manager_addresses(args.manager)
    except ValueError as error:
        print(f"error: --manager: {error}", file=sys.stderr)
        return EXIT_USAGE
    if not args.token:
        print("error: an agent needs a token of role 'agent': --token or PWEZA_TOKEN", file=sys.stderr)
        return EXIT_USAGE
    if args.concurrency is not None and args.concurrency < 1:
        print("error: --concurrency must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(args.log_level)
    from pweza.agent.main import run_agent  # after the flags: `--help` needs none of it

    return run_agent(
        manager=args.manager,
        pool=args.pool,
        namespace=args.namespace,
        token=args.token,
        agent_id=args.agent_id,
        concurrency=args.concurrency,
        tls_ca=args.tls_ca,
    )
