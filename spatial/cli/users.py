"""``spatial user``: departments, users, roles, API keys, grants and who may see a collection.

Each command is one transaction, audited as ``cli:<OS user>``.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import typer
from rich.table import Table
from sqlalchemy import Connection

from spatial import accounts
from spatial.audit import Actor
from spatial.cli.common import console, friendly
from spatial.db import engine, resolve_url
from spatial.errors import InvalidInputError
from spatial.settings import Settings

T = TypeVar("T")

app = typer.Typer(help="Departments, users, roles, API keys and grants.", no_args_is_help=True)
keys = typer.Typer(help="API keys.", no_args_is_help=True)
grants = typer.Typer(help="Who may read, edit or administer a collection.", no_args_is_help=True)
departments = typer.Typer(help="Departments.", no_args_is_help=True)
app.add_typer(keys, name="key")
app.add_typer(grants, name="grant")
app.add_typer(departments, name="department")

ROLE = typer.Option([], "--role", "-r", help="viewer, editor, steward or admin (repeatable).")


def _actor() -> Actor:
    return Actor.local()


@contextmanager
def _transaction() -> Iterator[Connection]:
    with engine(resolve_url(Settings())) as eng, eng.begin() as conn:
        yield conn


def _run(work: Callable[[Connection, Actor], T]) -> T:
    with _transaction() as conn:
        return work(conn, _actor())


def _password(stdin: bool) -> str:
    if stdin:
        return sys.stdin.readline().rstrip("\n")
    if not sys.stdin.isatty():
        msg = "no terminal to ask the password on; pass --password-stdin"
        raise InvalidInputError(msg)
    value: str = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    return value


@departments.command("add")
@friendly
def department_add(dept_id: str, name: str) -> None:
    """Create a department (ID: a short code such as ``land``; NAME: its full name)."""
    _run(lambda conn, actor: accounts.add_department(conn, actor, dept_id, name))
    console.print(f"[green]department[/] {dept_id} added")


@app.command("add")
@friendly
def add(
    username: str,
    role: list[str] = ROLE,
    department: str | None = typer.Option(None, help="The user's department id."),
    service: bool = typer.Option(False, "--service", help="A service account (keys, no password)."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password."),
    name: str | None = typer.Option(None, help="Display name."),
) -> None:
    """Create a user (asks for a password) or a service account (``--service``)."""
    password = None if service else _password(password_stdin)
    _run(lambda conn, actor: accounts.add_user(
        conn, actor, username, roles=tuple(role or ["viewer"]), department=department,
        password=password, service=service, display_name=name,
    ))  # fmt: skip
    console.print(f"[green]user[/] {username} added")


@app.command("list")
@friendly
def list_(
    as_json: bool = typer.Option(False, "--json", help="JSON instead of a table."),
) -> None:
    """Every user with department and roles."""
    with _transaction() as conn:
        rows = accounts.list_users(conn)
    _show(rows, as_json)


@app.command("passwd")
@friendly
def passwd(
    username: str,
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password."),
) -> None:
    """Set a user's password (their bearer tokens stop working)."""
    password = _password(password_stdin)
    _run(lambda conn, actor: accounts.set_password(conn, actor, username, password))
    console.print(f"[green]password set[/] for {username}")


@app.command("disable")
@friendly
def disable(username: str) -> None:
    """Disable a user: their tokens and keys stop working."""
    _run(lambda conn, actor: accounts.set_active(conn, actor, username, active=False))
    console.print(f"[yellow]user[/] {username} disabled")


@app.command("enable")
@friendly
def enable(username: str) -> None:
    """Enable a disabled user again."""
    _run(lambda conn, actor: accounts.set_active(conn, actor, username, active=True))
    console.print(f"[green]user[/] {username} enabled")


@app.command("roles")
@friendly
def roles(username: str, role: list[str] = ROLE) -> None:
    """Replace a user's roles."""
    _run(lambda conn, actor: accounts.set_roles(conn, actor, username, tuple(role)))
    console.print(f"[green]roles of[/] {username}: {', '.join(role) or 'none'}")


@keys.command("create")
@friendly
def key_create(
    username: str,
    name: str = typer.Option("", help="What the key is for."),
    days: int | None = typer.Option(None, min=1, help="Expire after this many days."),
) -> None:
    """Create an API key; it is printed once, on standard output."""
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=days) if days else None
    key = _run(lambda conn, actor: accounts.create_key(
        conn, actor, username, name=name, expires=expires
    ))  # fmt: skip
    typer.echo(key)


@keys.command("revoke")
@friendly
def key_revoke(prefix: str) -> None:
    """Revoke an API key by its prefix (the 8 hex digits after ``s3s_``)."""
    _run(lambda conn, actor: accounts.revoke_key(conn, actor, prefix))
    console.print(f"[yellow]key[/] {prefix} revoked")


@grants.command("add")
@friendly
def grant_add(
    collection: str,
    grantee: str = typer.Argument(help="public, department:ID, role:NAME or user:NAME."),
    privilege: str = typer.Option("read", help="read, write or admin."),
    row_filter: str | None = typer.Option(None, "--filter", help="CQL2 text, e.g. district = 3."),
    area: str | None = typer.Option(None, help="Only rows in this lon/lat polygon (WKT)."),
) -> None:
    """Grant a privilege on a collection, optionally on some of its rows only."""
    grant_id = _run(lambda conn, actor: accounts.add_grant(
        conn, actor, collection, grantee, privilege, row_filter=row_filter, area_wkt=area
    ))  # fmt: skip
    console.print(f"[green]grant[/] {grant_id}: {privilege} on {collection} to {grantee}")


@grants.command("list")
@friendly
def grant_list(
    collection: str | None = typer.Argument(None),
    as_json: bool = typer.Option(False, "--json", help="JSON instead of a table."),
) -> None:
    """Grants, of one collection or all."""
    with _transaction() as conn:
        rows = accounts.list_grants(conn, collection)
    _show(rows, as_json)


@grants.command("revoke")
@friendly
def grant_revoke(grant_id: int) -> None:
    """Remove a grant by its id."""
    _run(lambda conn, actor: accounts.revoke_grant(conn, actor, grant_id))
    console.print(f"[yellow]grant[/] {grant_id} revoked")


@app.command("visibility")
@friendly
def visibility(
    collection: str,
    public: bool | None = typer.Option(None, "--public/--private", help="Readable by everyone?"),
    department: str | None = typer.Option(None, help="The department that owns it."),
) -> None:
    """Make a collection public or private, and set the department that owns it."""
    _run(lambda conn, actor: accounts.set_visibility(
        conn, actor, collection, public=public, department=department
    ))  # fmt: skip
    console.print(f"[green]{collection}[/] updated")


def _show(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(rows, default=str, ensure_ascii=False, indent=2))
        return
    table = Table(*(rows[0].keys() if rows else ["(none)"]))
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row.values()))
    console.print(table)
