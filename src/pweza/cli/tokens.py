"""`pweza token ...`: create, list and revoke API tokens."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from pweza.cli.client import CliError
from pweza.cli.options import Output, Server, Token, check_output, client
from pweza.cli.output import Column, console, moment, show
from pweza.domain.roles import Role

token_app = typer.Typer(
    no_args_is_help=True,
    help="Create, list and revoke API tokens.",
    epilog="""Examples:

  pweza token create --role viewer --name dashboards --ttl 30d

  pweza token create --role agent --pool default/classifiers

  pweza token list -o json
""",
)


@token_app.command(
    "create",
    epilog="Examples:\n\n  pweza token create --role viewer --name dashboards --ttl 30d\n\n"
    "  pweza token create --role agent --pool default/classifiers\n\n"
    "  pweza token create --role admin --database-url sqlite:///pweza.db   # bootstrap",
)
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
        str | None,
        typer.Option(help="Lifetime: 30d, 12h, 90m, ... or 'never' (a token that never expires). [default: 90d]"),
    ] = None,
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
    from pweza.domain.durations import DEFAULT_TOKEN_TTL, parse_ttl
    from pweza.domain.errors import InvalidInput
    from pweza.manager.auth import pool_ref

    lifetime = ttl or DEFAULT_TOKEN_TTL
    try:
        ttl_seconds = parse_ttl(lifetime)
        if namespace is not None and pool is None:
            raise InvalidInput("--namespace names the namespace of --pool POOL; give --pool too")
        bound = None if pool is None else pool_ref(pool, namespace)
    except (ValueError, InvalidInput) as error:
        raise CliError(str(error), code=2) from None
    if role is Role.AGENT and (bound is None) == (not any_pool):
        raise CliError("an agent token is bound to one pool: give --pool NS/POOL (or --any-pool for all)", code=2)
    if role is not Role.AGENT and (bound is not None or any_pool):
        raise CliError(f"--pool and --any-pool are for agent tokens, not role {role.value!r}", code=2)
    if database_url:
        import asyncio

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
    body: dict[str, Any] = {"name": name, "role": role.value, "ttl": lifetime}
    if bound is not None:
        body["pool"] = bound
    if any_pool:
        body["anyPool"] = True
    with client(server, token) as api:
        reply = api.request("POST", "/api/v1/tokens", json=body)
    print(reply["token"])


def _expiry(t: dict[str, Any]) -> str:
    import time

    expires = t.get("expiresAt")
    if expires is None:
        return "never"
    return moment(expires) + (" (expired)" if expires <= time.time() else "")


TOKEN_COLUMNS = [
    Column("ID", lambda t: t["id"]),
    Column("NAME", lambda t: t["name"]),
    Column("ROLE", lambda t: t["role"]),
    Column("POOL", lambda t: (t.get("pool") or "*") if t["role"] == Role.AGENT.value else ""),
    Column("EXPIRES", _expiry),
    Column("REVOKED", lambda t: "yes" if t.get("revokedAt") else ""),
    Column("CREATED", lambda t: moment(t.get("createdAt")), True),
]


@token_app.command("list", epilog="Examples:\n\n  pweza token list\n\n  pweza token list -o json")
def token_list(output: Output = "table", server: Server = None, token: Token = None) -> None:
    """List tokens (never their secrets): agent tokens' pool ('*': any pool) and when each expires."""
    check_output(output)
    with client(server, token) as api:
        items = api.request("GET", "/api/v1/tokens")["items"]
    show(items, output, TOKEN_COLUMNS, lambda t: f"token/{t['id']}")


@token_app.command("revoke", epilog="Example:\n\n  pweza token revoke TOKEN_ID")
def token_revoke(token_id: str, server: Server = None, token: Token = None) -> None:
    """Revoke a token; it stops working within seconds on every replica."""
    with client(server, token) as api:
        api.request("DELETE", f"/api/v1/tokens/{token_id}")
    console.print(f"token {token_id} revoked")
