"""The long-running commands: `pweza manager`, `up`, `agent` and `operator`.

Each imports what it runs (uvicorn, gRPC, SQLAlchemy, kopf) when it starts, not when `pweza`
does. `manager` and `up` take the same port flags, each with its environment variable.
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pweza.cli.client import CliError
from pweza.cli.context import default_data_dir
from pweza.cli.options import Namespace

if TYPE_CHECKING:
    from pweza.manager.config import Settings

HttpPort = Annotated[
    int | None, typer.Option(envvar="HTTP_PORT", min=0, max=65535, help="REST API port.  [default: 8080]")
]
GrpcPort = Annotated[
    int | None, typer.Option(envvar="GRPC_PORT", min=0, max=65535, help="Agent channel port.  [default: 9090]")
]
MetricsPort = Annotated[
    int | None, typer.Option(envvar="METRICS_PORT", min=0, max=65535, help="Prometheus port.  [default: 2112]")
]


def register(app: typer.Typer) -> None:
    app.command(epilog=_MANAGER_EXAMPLES, rich_help_panel="Serving")(manager)
    app.command(epilog=_UP_EXAMPLES, rich_help_panel="Getting started")(up)
    app.command(epilog=_AGENT_EXAMPLES, rich_help_panel="Serving")(agent)
    app.command(epilog=_OPERATOR_EXAMPLES, rich_help_panel="Serving")(operator)


def _ports(http_port: int | None, grpc_port: int | None, metrics_port: int | None) -> dict[str, Any]:
    """The ports given on the command line or in the environment; the rest come from the config."""
    given = {"http_port": http_port, "grpc_port": grpc_port, "metrics_port": metrics_port}
    return {key: value for key, value in given.items() if value is not None}


def check_ports_free(settings: Settings) -> None:
    """One clear sentence, before anything starts, if a port is taken (instead of a traceback later)."""
    wanted = [
        ("HTTP", settings.http_port, "--http-port", "HTTP_PORT"),
        ("gRPC", settings.grpc_port, "--grpc-port", "GRPC_PORT"),
    ]
    if settings.metrics_enabled:
        wanted.append(("metrics", settings.metrics_port, "--metrics-port", "METRICS_PORT"))
    for what, port, flag, env in wanted:
        if port == 0:
            continue  # any free port
        family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((settings.host, port))
            except OSError as error:
                if error.errno != errno.EADDRINUSE:
                    raise CliError(f"cannot listen on {settings.host}:{port} ({what}): {error.strerror}") from None
                raise CliError(
                    f"cannot listen on {settings.host}:{port} ({what}): address already in use; "
                    f"stop what uses it or choose another port with {flag} or {env}"
                ) from None


_MANAGER_EXAMPLES = """Examples:

  DATABASE_URL=sqlite:///pweza.db pweza manager

  pweza manager --config config.yaml --http-port 8081 --grpc-port 9091 --metrics-port 2113
"""


def manager(
    config: Annotated[
        Path | None,
        typer.Option(
            help="Config file, which must exist  [default: $PWEZA_CONFIG or /etc/pweza-core/config.yaml, if there]"
        ),
    ] = None,
    http_port: HttpPort = None,
    grpc_port: GrpcPort = None,
    metrics_port: MetricsPort = None,
) -> None:
    """Run the Core Manager: REST API, agent channel (gRPC) and metrics; settings from the config and environment."""
    import asyncio

    from pweza.cli import logs
    from pweza.cli.serving import serve
    from pweza.manager.config import load_settings

    if config is not None and not config.is_file():
        raise CliError(f"--config {config}: no such file", code=2)
    settings = load_settings(config, overrides=_ports(http_port, grpc_port, metrics_port))
    check_ports_free(settings)
    logs.configure(settings.log_level)

    async def main() -> None:
        import signal

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, stop)

    asyncio.run(main())


_UP_EXAMPLES = """Examples:

  pweza up -f examples/support-triage           # manager on :8080 :9090 :2112 plus the pools' agents

  HTTP_PORT=8081 GRPC_PORT=9091 METRICS_PORT=2113 pweza up --data-dir /tmp/pweza2
"""


def up(
    file: Annotated[
        list[Path] | None, typer.Option("--file", "-f", help="Manifests to apply (file or folder).")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(envvar="PWEZA_DATA_DIR", help="State directory.  [default: ~/.local/share/pweza]")
    ] = None,
    http_port: HttpPort = None,
    grpc_port: GrpcPort = None,
    metrics_port: MetricsPort = None,
    log_level: Annotated[str, typer.Option(envvar="LOG_LEVEL")] = "WARNING",
) -> None:
    """Start the embedded platform: manager on SQLite plus local agent processes."""
    import asyncio

    from pweza.cli import logs

    # Agents are started with fork+exec and never use gRPC in the forked child; without this,
    # gRPC's fork handlers print "Other threads are currently calling into gRPC" for every agent.
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
    from pweza.cli.embedded import run_embedded
    from pweza.cli.output import console
    from pweza.manager.config import load_settings

    for target in file or []:
        if not target.exists():
            raise CliError(f"-f {target}: no such file or directory", code=2)
    directory = (data_dir or default_data_dir()).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    logs.configure(log_level)
    settings = load_settings(
        overrides={
            "database_url": f"sqlite:///{directory / 'pweza.db'}",
            "host": "127.0.0.1",
            "log_level": log_level,
            # Where the embedded engine writes each agent's output; the API serves it from there.
            "agent_log_dir": str(directory / "logs"),
            **_ports(http_port, grpc_port, metrics_port),
        },
        path=directory / "config.yaml",
    )
    check_ports_free(settings)
    asyncio.run(run_embedded(settings, directory, list(file or []), console))


_AGENT_EXAMPLES = """Examples:

  PWEZA_TOKEN=$(pweza token create --role agent --pool default/classifiers) \\
    pweza agent --pool classifiers --manager 127.0.0.1:9090
"""


def agent(
    pool: Annotated[str, typer.Option(help="Pool to serve.")],
    manager_address: Annotated[
        str,
        typer.Option(
            "--manager", help="Manager gRPC HOST:PORT, or a comma-separated list of replicas to fail over between."
        ),
    ] = "127.0.0.1:9090",
    namespace: Namespace = "default",
    token: Annotated[str | None, typer.Option(help="Agent token (role agent).", envvar="PWEZA_TOKEN")] = None,
    agent_id: Annotated[str | None, typer.Option(help="Stable id (default: random).")] = None,
    concurrency: Annotated[int | None, typer.Option(min=1, help="Override the template's.")] = None,
    tls_ca: Annotated[Path | None, typer.Option(help="CA bundle: use TLS to the manager.")] = None,
    log_level: Annotated[str, typer.Option(envvar="LOG_LEVEL")] = "INFO",
) -> None:
    """Run an agent process that executes tasks of one pool."""
    from pweza.agent.failover import parse_manager_addresses
    from pweza.agent.main import run_agent
    from pweza.cli import logs

    logs.configure(log_level)
    try:
        parse_manager_addresses(manager_address)
    except ValueError as error:
        raise CliError(f"--manager: {error}", code=2) from None
    if not token:
        raise CliError("an agent needs a token of role 'agent': --token or PWEZA_TOKEN", code=2)
    code = run_agent(
        manager=manager_address,
        pool=pool,
        namespace=namespace,
        token=token,
        agent_id=agent_id,
        concurrency=concurrency,
        tls_ca=tls_ca,
    )
    raise typer.Exit(code)


def operator(
    kubeconfig: Annotated[
        str | None, typer.Option(envvar="KUBECONFIG", help="Default: in-cluster, then ~/.kube/config.")
    ] = None,
    namespace: Annotated[
        list[str] | None, typer.Option("--namespace", "-n", help="Watch only these (default: all).")
    ] = None,
    manager_url: Annotated[
        str | None, typer.Option(envvar="PWEZA_MANAGER_URL", help="Manager REST URL to register objects with.")
    ] = None,
    manager_token: Annotated[
        str | None, typer.Option(envvar="PWEZA_MANAGER_TOKEN", help="Token of role operator.")
    ] = None,
    agent_manager_address: Annotated[
        str | None,
        typer.Option(
            envvar="PWEZA_AGENT_MANAGER_ADDRESS", help="gRPC address agent pods use (default: the chart's Service)."
        ),
    ] = None,
    agent_token_secret: Annotated[
        str | None, typer.Option(help="Secret with the agents' token, key 'token' (default: pweza-agent-token).")
    ] = None,
    agent_image: Annotated[
        str | None,
        typer.Option(
            envvar="PWEZA_AGENT_IMAGE",
            help="Image when neither pool nor template names one (default: this version's pweza-core image).",
        ),
    ] = None,
    lease_namespace: Annotated[str, typer.Option(envvar="POD_NAMESPACE")] = "default",
    lease_name: str = "pweza-operator",
    lease_seconds: Annotated[int, typer.Option(min=3)] = 15,
    identity: Annotated[str | None, typer.Option(envvar="POD_NAME")] = None,
    metrics_port: int = 8000,
    health_port: int = 8081,
    host: str = "0.0.0.0",
    resync_seconds: Annotated[float, typer.Option(min=1)] = 30.0,
    webhook_cert_file: Annotated[
        Path | None,
        typer.Option(
            envvar="PWEZA_WEBHOOK_CERT_FILE",
            help="Serve the validating admission webhook over HTTPS with this certificate (PEM).",
        ),
    ] = None,
    webhook_key_file: Annotated[
        Path | None, typer.Option(envvar="PWEZA_WEBHOOK_KEY_FILE", help="The webhook certificate's private key (PEM).")
    ] = None,
    webhook_port: Annotated[int, typer.Option(envvar="PWEZA_WEBHOOK_PORT", min=1, max=65535)] = 8443,
    log_level: Annotated[str, typer.Option(envvar="LOG_LEVEL")] = "INFO",
) -> None:
    """Run the Kubernetes operator (kopf) for AgentTemplate, AgentPool and Workflow resources."""
    import asyncio

    from pweza.cli import logs
    from pweza.operator.admission import WebhookError, WebhookOptions
    from pweza.operator.main import OperatorOptions, run_operator
    from pweza.operator.resources import (
        DEFAULT_AGENT_TOKEN_SECRET,
        DEFAULT_IMAGE,
        DEFAULT_MANAGER_GRPC,
        OperatorConfig,
    )

    logs.configure(log_level)
    if (webhook_cert_file is None) != (webhook_key_file is None):
        raise CliError("give both --webhook-cert-file and --webhook-key-file, or neither", code=2)
    webhook = (
        WebhookOptions(certfile=str(webhook_cert_file), keyfile=str(webhook_key_file), port=webhook_port, host=host)
        if webhook_cert_file is not None and webhook_key_file is not None
        else None
    )
    options = OperatorOptions(
        kubeconfig=kubeconfig,
        namespaces=list(namespace or []),
        manager_url=manager_url,
        manager_token=manager_token,
        resources=OperatorConfig(
            manager_grpc=agent_manager_address or DEFAULT_MANAGER_GRPC,
            agent_token_secret=agent_token_secret or DEFAULT_AGENT_TOKEN_SECRET,
            default_image=agent_image or DEFAULT_IMAGE,
        ),
        lease_name=lease_name,
        lease_namespace=lease_namespace,
        lease_seconds=lease_seconds,
        metrics_port=metrics_port,
        health_port=health_port,
        host=host,
        resync_seconds=resync_seconds,
        webhook=webhook,
        **({"identity": identity} if identity else {}),
    )
    try:
        code = asyncio.run(run_operator(options))
    except WebhookError as error:
        raise CliError(str(error), code=2) from None
    raise typer.Exit(code)


_OPERATOR_EXAMPLES = """Examples:

  pweza operator --manager-url http://pweza-core-manager:8080 --manager-token $TOKEN -n team-a
"""
