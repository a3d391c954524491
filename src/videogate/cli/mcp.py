"""``videogate mcp``: the MCP server for AI agents (needs the ``[mcp]`` extra)."""

from __future__ import annotations

from typing import Annotated

import typer

from videogate.cli._client_common import ApiKeyOption, BaseUrlOption
from videogate.cli._console import make_console

err = make_console(stderr=True)


def mcp_command(
    base_url: BaseUrlOption = None,
    api_key: ApiKeyOption = None,
    http: Annotated[
        bool,
        typer.Option(
            "--http", help="Serve streamable HTTP at http://HOST:PORT/mcp instead of stdio."
        ),
    ] = False,
    host: Annotated[str, typer.Option(help="Bind address with --http.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port with --http.")] = 8765,
) -> None:
    """Run an MCP server (stdio; --http for streamable HTTP) with tools to create,
    wait for, download and cancel videos through a videogate server."""
    try:
        from videogate import mcp_server
    except ModuleNotFoundError as exc:
        # stdout belongs to the MCP protocol on stdio: explain on stderr.
        err.print(
            f"[red]error:[/red] videogate mcp needs the MCP SDK ({exc.name} is missing): "
            "pip install 'videogate\\[mcp]'"
        )
        raise SystemExit(2) from None
    from videogate.client import VideogateClientError

    try:
        mcp_server.run(mcp_server.Connection(base_url, api_key), http=http, host=host, port=port)
    except VideogateClientError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise SystemExit(2) from None
