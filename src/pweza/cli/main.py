"""The `pweza` command."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from pweza import __version__
from pweza.cli import logs
from pweza.cli.client import ApiClient, CliError
from pweza.cli.context import default_data_dir, load_context
from pweza.cli.files import load_documents, plural_of
from pweza.cli.output import console, emit, err_console, object_rows, table
from pweza.cli.runs import run_command, runs_app
from pweza.domain.durations import DEFAULT_TOKEN_TTL, parse_ttl
from pweza.domain.errors import InvalidInput
from pweza.domain.kinds import resolve_kind
from pweza.domain.roles import Role
from pweza.manager.auth import pool_ref
from pweza.manager.config import load_settings
from pweza.operator.resources import DEFAULT_AGENT_TOKEN_SECRET, DEFAULT_IMAGE, DEFAULT_MANAGER_GRPC, OperatorConfig

app = typer.Typer(no_args_is_help=True, add_completion=False, help="pweza: run fleets of AI agents.")
task_app = typer.Typer(no_args_is_help=True, help="Submit and inspect tasks.")
token_app = typer.Typer(no_args_is_help=True, help="Create, list and revoke API tokens.")
app.add_typer(task_app, name="task")
app.add_typer(token_app, name="token")
app.add_typer(runs_app, name="runs")
app.command("run")(run_command)

Server = Annotated[str | None, typer.Option("--server", "-s", help="Manager URL [env PWEZA_URL].")]
Token = Annotated[str | None, typer.Option("--token", help="Bearer token [env PWEZA_TOKEN].")]
Output = Annotated[str, typer.Option("--output", "-o", help="table, json or yaml.")]
Namespace = Annotated[str, typer.Option("--namespace", "-n")]


def _client(server: str | None, token: str | None, timeout: float = 30.0) -> ApiClient:
    return ApiClient(load_context(server, token), timeout=timeout)


def _fail(error: CliError) -> None:
    err_console.print(f"[red]error:[/red] {error}")
    raise typer.Exit(error.code)


def _check_output(output: str) -> None:
    if output not in ("table", "json", "yaml"):
        _fail(CliError(f"--output must be table, json or yaml, not {output!r}", code=2))


@app.command()
def version() -> None:
    """Print the version."""
    print(__version__)


@app.command()
def manager(
    config: Annotated[Path | None, typer.Option(help="Config file [default /etc/pweza-core/config.yaml].")] = None,
) -> None:
    """Run the Core Manager (HTTP :8080, gRPC :9090, metrics :2112)."""
    from pweza.cli.serving import serve

    try:
        settings = load_settings(config)
    except InvalidInput as error:
        _fail(CliError(error.detail, code=2))
    logs.configure(settings.log_level)

    async def main() -> None:
        import signal

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, stop)

    asyncio.run(main())


@app.command()
def agent(
    pool: Annotated[str, typer.Option(help="Pool to serve.")],
    manager_address: Annotated[
        str,
        typer.Option(
            "--manager", help="Manager gRPC HOST:PORT, or a comma-separated list of replicas to fail over between."
        ),
    ] = "127.0.0.1:9090",
    namespace: Namespace = "default",
    token: Annotated[str | None, typer.Option(help="Agent token [env PWEZA_TOKEN].", envvar="PWEZA_TOKEN")] = None,
    agent_id: Annotated[str | None, typer.Option(help="Stable id (default: random).")] = None,
    concurrency: Annotated[int | None, typer.Option(min=1, help="Override the template's.")] = None,
    tls_ca: Annotated[Path | None, typer.Option(help="CA bundle: use TLS to the manager.")] = None,
    log_level: Annotated[str, typer.Option(envvar="LOG_LEVEL")] = "INFO",
) -> None:
    """Run an agent process that executes tasks of one pool."""
    from pweza.agent.failover import parse_manager_addresses
    from pweza.agent.main import run_agent

    logs.configure(log_level)
    try:
        parse_manager_addresses(manager_address)
    except ValueError as error:
        _fail(CliError(f"--manager: {error}", code=2))
    if not token:
        _fail(CliError("an agent needs a token of role 'agent': --token or PWEZA_TOKEN", code=2))
    assert token is not None
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


@app.command()
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
        str, typer.Option(envvar="PWEZA_AGENT_MANAGER_ADDRESS", help="gRPC address agent pods use.")
    ] = DEFAULT_MANAGER_GRPC,
    agent_token_secret: Annotated[
        str, typer.Option(help="Secret with the agents' token (key 'token').")
    ] = DEFAULT_AGENT_TOKEN_SECRET,
    agent_image: Annotated[
        str, typer.Option(envvar="PWEZA_AGENT_IMAGE", help="Image when neither pool nor template names one.")
    ] = DEFAULT_IMAGE,
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
    from pweza.operator.admission import WebhookError, WebhookOptions
    from pweza.operator.main import OperatorOptions, run_operator

    logs.configure(log_level)
    if (webhook_cert_file is None) != (webhook_key_file is None):
        _fail(CliError("give both --webhook-cert-file and --webhook-key-file, or neither", code=2))
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
            manager_grpc=agent_manager_address, agent_token_secret=agent_token_secret, default_image=agent_image
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
        _fail(CliError(str(error), code=2))
    raise typer.Exit(code)


@app.command()
def up(
    file: Annotated[list[Path] | None, typer.Option("--file", "-f", help="Manifests to apply.")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="State directory [~/.local/share/pweza].")] = None,
    http_port: int = 8080,
    grpc_port: int = 9090,
    metrics_port: int = 2112,
    log_level: Annotated[str, typer.Option(envvar="LOG_LEVEL")] = "WARNING",
) -> None:
    """Start the embedded platform: manager on SQLite plus local agent processes."""
    from pweza.cli.embedded import run_embedded

    directory = (data_dir or default_data_dir()).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    logs.configure(log_level)
    try:
        settings = load_settings(
            overrides={
                "database_url": f"sqlite:///{directory / 'pweza.db'}",
                "host": "127.0.0.1",
                "http_port": http_port,
                "grpc_port": grpc_port,
                "metrics_port": metrics_port,
                "log_level": log_level,
            },
            path=directory / "config.yaml",
        )
    except InvalidInput as error:
        _fail(CliError(error.detail, code=2))
    try:
        asyncio.run(run_embedded(settings, directory, list(file or []), console))
    except CliError as error:
        _fail(error)


@app.command()
def apply(
    file: Annotated[list[Path], typer.Option("--file", "-f", help="File or folder of manifests.")],
    server: Server = None,
    token: Token = None,
) -> None:
    """Create or replace objects from YAML manifests."""
    try:
        documents = [doc for target in file for doc in load_documents(target)]
        if not documents:
            raise CliError("no pweza.ai/v1 manifests found", code=2)
        with _client(server, token) as client:
            for where, document in documents:
                name = document["metadata"]["name"]
                namespace = document["metadata"].get("namespace", "default")
                path = f"/api/v1/{plural_of(document['kind'])}/{name}"
                try:
                    result = client.request("PUT", path, json=document, params={"namespace": namespace})
                except CliError as error:
                    raise CliError(f"{where}: {error}") from None
                verb = (
                    "unchanged"
                    if not result["changed"]
                    else f"applied (generation {result['object']['metadata']['generation']})"
                )
                console.print(f"{document['kind']}/{name} {verb}")
                for warning in result["warnings"]:
                    err_console.print(f"[yellow]warning:[/yellow] {warning}")
    except CliError as error:
        _fail(error)


@app.command()
def get(
    kind: Annotated[str, typer.Argument(help="agenttemplates|agentpools|workflows (or ap, at...)")],
    name: Annotated[str | None, typer.Argument()] = None,
    namespace: Annotated[str | None, typer.Option("--namespace", "-n")] = None,
    output: Output = "table",
    server: Server = None,
    token: Token = None,
) -> None:
    """Show objects."""
    _check_output(output)
    try:
        resolved = resolve_kind(kind)
    except InvalidInput as error:
        _fail(CliError(error.detail, code=2))
    try:
        with _client(server, token) as client:
            if name:
                items = [
                    client.request(
                        "GET",
                        f"/api/v1/{plural_of(resolved)}/{name}",
                        params={"namespace": namespace or "default"},
                    )
                ]
            else:
                params = {"namespace": namespace} if namespace else {}
                items = client.request("GET", f"/api/v1/{plural_of(resolved)}", params=params)["items"]
    except CliError as error:
        _fail(error)
    if output == "table":
        table(*object_rows(resolved, items))
    else:
        emit(items[0] if name else items, output)


@app.command()
def delete(kind: str, name: str, namespace: Namespace = "default", server: Server = None, token: Token = None) -> None:
    """Delete an object."""
    try:
        resolved = resolve_kind(kind)
        with _client(server, token) as client:
            client.request("DELETE", f"/api/v1/{plural_of(resolved)}/{name}", params={"namespace": namespace})
    except InvalidInput as error:
        _fail(CliError(error.detail, code=2))
    except CliError as error:
        _fail(error)
    console.print(f"{resolved}/{name} deleted")


def _parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise CliError(f"{what} is not valid JSON: {error}", code=2) from None


@task_app.command("submit")
def task_submit(
    pool: Annotated[str, typer.Option(help="Pool that runs the task.")],
    input_json: Annotated[str, typer.Option("--input", help="Task input as JSON.")] = "null",
    count: Annotated[int, typer.Option(min=1, max=10_000, help="Submit this many copies.")] = 1,
    priority: int = 0,
    timeout: Annotated[str | None, typer.Option(help="Override the template's timeout, e.g. 30s.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the result(s).")] = False,
    namespace: Namespace = "default",
    output: Output = "json",
    server: Server = None,
    token: Token = None,
) -> None:
    """Submit tasks to a pool; with --wait, show progress and the result."""
    _check_output(output)
    try:
        value = _parse_json(input_json, "--input")
        item: dict[str, Any] = {"pool": pool, "namespace": namespace, "input": value, "priority": priority}
        if timeout:
            item["timeout"] = timeout
        with _client(server, token, timeout=60.0) as client:
            if count == 1:
                ids = [client.request("POST", "/api/v1/tasks", json=item)["id"]]
            else:
                reply = client.request("POST", "/api/v1/tasks:batch", json={"tasks": [item] * count})
                ids = [entry["id"] for entry in reply["items"]]
            if not wait:
                emit(ids[0] if count == 1 else ids, output if output != "table" else "json")
                return
            results = _wait_all(client, ids)
    except CliError as error:
        _fail(error)
    failed = [r for r in results if r["state"] != "succeeded"]
    emit(
        results[0] if count == 1 else {"succeeded": count - len(failed), "failed": len(failed)},
        output if output != "table" else "json",
    )
    raise typer.Exit(1 if failed else 0)


def _wait_all(client: ApiClient, ids: list[str]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console, transient=True) as progress:
        bar = progress.add_task("waiting for tasks", total=len(ids))
        for task_id in ids:
            deadline = time.monotonic() + 3600
            while time.monotonic() < deadline:
                task = client.request("GET", f"/api/v1/tasks/{task_id}/wait", params={"timeout": 25})
                if task["state"] in ("succeeded", "failed", "cancelled", "timed_out"):
                    break
            results.append(task)
            progress.advance(bar)
    return results


@task_app.command("get")
def task_get(task_id: str, output: Output = "json", server: Server = None, token: Token = None) -> None:
    """Show a task with its attempts."""
    _check_output(output)
    try:
        with _client(server, token) as client:
            emit(client.request("GET", f"/api/v1/tasks/{task_id}"), "yaml" if output == "yaml" else "json")
    except CliError as error:
        _fail(error)


@task_app.command("list")
def task_list(
    pool: str | None = None,
    state: str | None = None,
    limit: int = 20,
    output: Output = "table",
    server: Server = None,
    token: Token = None,
) -> None:
    """List recent tasks, newest first."""
    _check_output(output)
    params: dict[str, Any] = {"limit": limit}
    if pool:
        params["pool"] = pool
    if state:
        params["state"] = state
    try:
        with _client(server, token) as client:
            items = client.request("GET", "/api/v1/tasks", params=params)["items"]
    except CliError as error:
        _fail(error)
    if output != "table":
        emit(items, output)
        return
    table(
        ["ID", "POOL", "STATE", "ATTEMPTS", "AGENT"],
        [[t["id"], t["pool"], t["state"], t["attempts"], t["agentId"]] for t in items],
    )


@task_app.command("cancel")
def task_cancel(task_id: str, server: Server = None, token: Token = None) -> None:
    """Cancel a task; a running handler sees its cancellation signal."""
    try:
        with _client(server, token) as client:
            task = client.request("POST", f"/api/v1/tasks/{task_id}/cancel")
    except CliError as error:
        _fail(error)
    pending = task["cancelRequested"] and task["state"] != "cancelled"
    console.print(f"task {task_id}: {task['state']}" + (" (cancel sent to the agent)" if pending else ""))


@token_app.command("create")
def token_create(
    role: Annotated[Role, typer.Option(help="admin, operator, viewer or agent.")],
    name: Annotated[str, typer.Option(help="Who or what the token is for.")] = "cli",
    pool: Annotated[
        str | None, typer.Option(help="Agent tokens: the one pool they serve, NS/POOL (or POOL with --namespace).")
    ] = None,
    namespace: Annotated[str | None, typer.Option("--namespace", "-n", help="The namespace of --pool POOL.")] = None,
    any_pool: Annotated[
        bool, typer.Option("--any-pool", help="Agent tokens: serve every pool (instead of --pool).")
    ] = False,
    ttl: Annotated[
        str, typer.Option(help="Lifetime: 30d, 12h, 90m, ... or 'never' (a token that never expires).")
    ] = DEFAULT_TOKEN_TTL,
    database_url: Annotated[
        str | None,
        typer.Option(help="Create directly in this database (bootstrap, no API needed)."),
    ] = None,
    server: Server = None,
    token: Token = None,
) -> None:
    """Create a token and print it once; only its hash is stored.

    An agent token is bound to one pool (--pool NS/POOL); one for every pool needs --any-pool.
    Tokens expire after --ttl (90 days unless told); --ttl never makes one that does not."""
    try:
        ttl_seconds = parse_ttl(ttl)
        if namespace is not None and pool is None:
            raise InvalidInput("--namespace names the namespace of --pool POOL; give --pool too")
        bound = None if pool is None else pool_ref(pool, namespace)
    except (ValueError, InvalidInput) as error:
        _fail(CliError(str(error), code=2))
        return
    if role is Role.AGENT and (bound is None) == (not any_pool):
        _fail(CliError("an agent token is bound to one pool: give --pool NS/POOL (or --any-pool for all)", code=2))
    if role is not Role.AGENT and (bound is not None or any_pool):
        _fail(CliError(f"--pool and --any-pool are for agent tokens, not role {role.value!r}", code=2))
    if database_url:
        from pweza.manager.auth import TokenService
        from pweza.store.sqlite import open_store

        async def create() -> str:
            store = open_store(database_url)
            await store.open()
            try:
                _, secret = await TokenService(store).create(
                    name, role, pool=bound, any_pool=any_pool, ttl_seconds=ttl_seconds
                )
            finally:
                await store.close()
            return secret

        print(asyncio.run(create()))
        return
    body: dict[str, Any] = {"name": name, "role": role.value, "ttl": ttl}
    if bound is not None:
        body["pool"] = bound
    if any_pool:
        body["anyPool"] = True
    try:
        with _client(server, token) as client:
            reply = client.request("POST", "/api/v1/tokens", json=body)
    except CliError as error:
        _fail(error)
    print(reply["token"])


def _when(at: float | None) -> str:
    return "" if at is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(at)) + "Z"


@token_app.command("list")
def token_list(server: Server = None, token: Token = None) -> None:
    """List tokens (never their secrets): agent tokens' pool ('*': any pool) and when each expires."""
    try:
        with _client(server, token) as client:
            items = client.request("GET", "/api/v1/tokens")["items"]
    except CliError as error:
        _fail(error)
    now = time.time()
    rows = []
    for t in items:
        expires = t.get("expiresAt")
        expiry = "never" if expires is None else _when(expires) + (" (expired)" if expires <= now else "")
        pool = (t.get("pool") or "*") if t["role"] == Role.AGENT.value else ""
        rows.append([t["id"], t["name"], t["role"], pool, expiry, "yes" if t["revokedAt"] else ""])
    table(["ID", "NAME", "ROLE", "POOL", "EXPIRES", "REVOKED"], rows)


@token_app.command("revoke")
def token_revoke(token_id: str, server: Server = None, token: Token = None) -> None:
    """Revoke a token; it stops working within seconds on every replica."""
    try:
        with _client(server, token) as client:
            client.request("DELETE", f"/api/v1/tokens/{token_id}")
    except CliError as error:
        _fail(error)
    console.print(f"token {token_id} revoked")


@app.command()
def doctor(
    values: Annotated[
        list[Path] | None, typer.Option("--values", "-f", help="Chart values files, as given to helm (repeatable).")
    ] = None,
    chart: Annotated[
        Path | None, typer.Option(help="Chart folder whose values.yaml is the base (default: charts/pweza-core).")
    ] = None,
    kubeconfig: Annotated[str | None, typer.Option(envvar="KUBECONFIG", help="Default: ~/.kube/config.")] = None,
    context: Annotated[str | None, typer.Option(help="Kubeconfig context (default: the current one).")] = None,
    release_namespace: Annotated[
        str | None, typer.Option(help="Namespace helm installs the release into (default: namespace.system).")
    ] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="table or json.")] = "table",
) -> None:
    """Check the cluster of the current kubeconfig for what the Helm chart needs; exit 1 on a failure."""
    from pweza.cli.doctor import Cluster, load_values, print_report, run_checks

    if output not in ("table", "json"):
        _fail(CliError(f"--output must be table or json, not {output!r}", code=2))
    try:
        merged = load_values(list(values or []), chart)
    except ValueError as error:
        _fail(CliError(str(error), code=2))
    try:
        cluster = Cluster.connect(kubeconfig, context)
    except Exception as error:  # noqa: BLE001 - a missing or broken kubeconfig is reported, not raised
        _fail(CliError(f"cannot load the kubeconfig: {error}", code=2))
    raise typer.Exit(print_report(run_checks(merged, cluster, release_namespace), output))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
