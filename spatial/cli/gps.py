"""``spatial gps``: the device registry, geofences, webhooks and retention of old positions.

Each change is audited as ``cli:<OS user>`` (:meth:`spatial.audit.Actor.local`) by the
function that makes it, in the same transaction, as the API's changes are.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re

import psycopg
import typer
from rich.table import Table

from spatial.audit import Actor
from spatial.cli.common import console, friendly
from spatial.db import resolve_url
from spatial.errors import InvalidInputError
from spatial.settings import Settings

app = typer.Typer(help="GPS devices, receivers and tracks.", no_args_is_help=True)
devices = typer.Typer(help="The device registry.", no_args_is_help=True)
app.add_typer(devices, name="device")


def _connect() -> psycopg.Connection:
    return psycopg.connect(resolve_url(Settings()), autocommit=True)


@devices.command("add")
@friendly
def device_add(
    device_id: str = typer.Argument(..., help="The id the device reports (OsmAnd id, ...)."),
    name: str | None = typer.Option(None, help="A human name [default: the id]."),
    department: str | None = typer.Option(None, help="The department that owns it."),
    kind: str = typer.Option("vehicle", help="vehicle, person, boat, drone or sensor."),
    jt808_phone: str | None = typer.Option(
        None, "--jt808-phone", help="The SIM phone number a JT/T 808 terminal sends."
    ),
) -> None:
    """Register a device; prints its token once (receivers that sign in use it)."""
    from spatial.gps.store import add_device  # noqa: PLC0415 - keep `spatial --help` fast

    with _connect() as conn:
        token = add_device(conn, device_id, name=name, department=department, kind=kind,
                           actor=Actor.local(), terminal=jt808_phone)  # fmt: skip
    console.print(f"[green]registered[/] {device_id}; token (shown once): {token}")


@devices.command("list")
@friendly
def device_list() -> None:
    """The registered devices."""
    from spatial.gps.store import list_devices  # noqa: PLC0415 - keep `spatial --help` fast

    with _connect() as conn:
        found = list_devices(conn)
    table = Table("id", "name", "department", "kind", "active")
    for d in found:
        table.add_row(d.id, d.name, d.department or "", d.kind, "yes" if d.active else "no")
    console.print(table)


@devices.command("remove")
@friendly
def device_remove(device_id: str = typer.Argument(...)) -> None:
    """Unregister a device (its positions stay)."""
    from spatial.gps.store import remove_device  # noqa: PLC0415 - keep `spatial --help` fast

    with _connect() as conn:
        remove_device(conn, device_id, actor=Actor.local())
    console.print(f"removed {device_id}")


def parse_age(text: str) -> dt.timedelta:
    """``400d``, ``12w``, ``36h``: an age.

    Raises:
        InvalidInputError: not a number with d, w or h.
    """
    match = re.fullmatch(r"\s*(\d+)\s*([dwh])\s*", text)
    if match is None:
        msg = f"--older-than {text!r}: give a number of days, weeks or hours, e.g. 400d"
        raise InvalidInputError(msg)
    units = {"d": "days", "w": "weeks", "h": "hours"}
    return dt.timedelta(**{units[match.group(2)]: int(match.group(1))})


@app.command()
@friendly
def retention(
    older_than: str = typer.Option(
        ..., "--older-than", help="Age of positions to drop, e.g. 400d."
    ),
) -> None:
    """Drop whole month partitions of positions older than the age."""
    from spatial.gps.store import retention as drop  # noqa: PLC0415 - keep `spatial --help` fast

    age = parse_age(older_than)
    with _connect() as conn:
        dropped = drop(conn, age, actor=Actor.local())
    console.print(
        f"dropped {len(dropped)} partition(s){': ' + ', '.join(dropped) if dropped else ''}"
    )


fences_app = typer.Typer(help="Geofences.", no_args_is_help=True)
app.add_typer(fences_app, name="fence")


@fences_app.command("import")
@friendly
def fence_import(
    collection: str = typer.Argument(..., help="A polygon collection (flood zones, districts)."),
    name_field: str | None = typer.Option(None, "--name-field", help="The property naming each."),
    dwell: int | None = typer.Option(None, "--dwell", help="Seconds inside before a dwell event."),
) -> None:
    """Make (or refresh) a fence of every polygon of a collection."""
    from spatial.catalog import get_collection  # noqa: PLC0415 - keep `spatial --help` fast
    from spatial.db import engine  # noqa: PLC0415 - keep `spatial --help` fast
    from spatial.features import LayerSchema  # noqa: PLC0415 - keep `spatial --help` fast
    from spatial.gps.fences import import_fences  # noqa: PLC0415 - keep `spatial --help` fast

    url = resolve_url(Settings())
    with engine(url) as eng, eng.connect() as conn:
        layer = LayerSchema.of(get_collection(conn, collection))
    with _connect() as conn:
        count = import_fences(conn, layer, name_field=name_field, dwell_s=dwell,
                              actor=Actor.local())  # fmt: skip
    console.print(f"{count} fence(s) from {collection}")


@fences_app.command("list")
@friendly
def fence_list() -> None:
    """The fences."""
    with _connect() as conn:
        rows = conn.execute(
            "SELECT id, name, coalesce(source_collection, 'drawn'), dwell_s, active "
            "FROM gps.fences ORDER BY id"
        ).fetchall()
    table = Table("id", "name", "from", "dwell (s)", "active")
    for fence_id, name, origin, dwell, active in rows:
        table.add_row(str(fence_id), name, origin, str(dwell or ""), "yes" if active else "no")
    console.print(table)


@fences_app.command("remove")
@friendly
def fence_remove(
    fence_id: int = typer.Argument(..., help="The fence's id (see 'fence list')."),
) -> None:
    """Delete a fence with its state and events."""
    from spatial.gps.fences import remove_fence  # noqa: PLC0415 - keep `spatial --help` fast

    with _connect() as conn:
        remove_fence(conn, fence_id, actor=Actor.local())
    console.print(f"removed fence {fence_id}")


webhooks_app = typer.Typer(help="Webhooks: geofence events POSTed to other systems.",
                           no_args_is_help=True)  # fmt: skip
app.add_typer(webhooks_app, name="webhook")


@webhooks_app.command("add")
@friendly
def webhook_add(
    url: str = typer.Argument(..., help="Where events are POSTed (http:// or https://)."),
    secret: str | None = typer.Option(
        None, "--secret", help="Signs each delivery (16+ characters) [default: generated]."
    ),
    fence: list[int] = typer.Option([], "--fence", help="Only this fence's events (repeat)."),
    kind: list[str] = typer.Option(
        [],
        "--kind",
        help="Only enter, exit, dwell, on-scene, alarm-raised or alarm-cleared (repeat).",
    ),
    department: str | None = typer.Option(
        None, "--department", help="Only events of this department's devices (or datastreams)."
    ),
) -> None:
    """Register a webhook; it gets the events recorded from now on."""
    from spatial.gps.webhooks import add_webhook  # noqa: PLC0415 - keep `spatial --help` fast

    with _connect() as conn:
        webhook_id, made = add_webhook(conn, url, secret=secret, fence_ids=fence, kinds=kind,
                                       department=department, actor=Actor.local())  # fmt: skip
    console.print(f"[green]webhook {webhook_id}[/] → {url}", highlight=False)
    if secret is None:
        console.print(f"secret (shown once): {made}", highlight=False)


@webhooks_app.command("list")
@friendly
def webhook_list() -> None:
    """The webhooks and how their deliveries go."""
    from spatial.gps.webhooks import list_webhooks  # noqa: PLC0415 - keep `spatial --help` fast

    with _connect() as conn:
        found = list_webhooks(conn)
    table = Table("id", "url", "only", "delivered to", "state")
    for w in found:
        only = [f"fence {','.join(map(str, w.fence_ids))}" if w.fence_ids else "",
                ",".join(w.kinds or ()), w.department or ""]  # fmt: skip
        state = "inactive" if not w.active else "ok"
        if w.failures:
            state = f"{w.failures} failure(s): {w.last_error}"
        table.add_row(str(w.id), w.url, "; ".join(o for o in only if o) or "-",
                      f"event {w.last_event_id}", state)  # fmt: skip
    console.print(table)


@webhooks_app.command("remove")
@friendly
def webhook_remove(webhook_id: int = typer.Argument(...)) -> None:
    """Remove a webhook."""
    from spatial.gps.webhooks import remove_webhook  # noqa: PLC0415 - keep `spatial --help` fast

    with _connect() as conn:
        remove_webhook(conn, webhook_id, actor=Actor.local())
    console.print(f"removed webhook {webhook_id}")


@app.command()
@friendly
def tracks() -> None:
    """Derive the tracks, trips and stops of every device-day whose positions changed (the
    API does it every few seconds)."""
    from spatial.gps.tracks import rebuild_all  # noqa: PLC0415 - keep `spatial --help` fast

    with _connect() as conn:
        done = rebuild_all(conn)
    console.print(f"derived {done} device-day(s)")


@app.command()
@friendly
def receive(
    nmea_port: int | None = typer.Option(
        None, "--nmea-port", help="Listen for NMEA 0183 over TCP on this port (first line #ID)."
    ),
    host: str = typer.Option("0.0.0.0", "--host", help="Address the TCP listeners bind."),  # noqa: S104
    mqtt: str | None = typer.Option(
        None, "--mqtt", help="Follow OwnTracks on this MQTT broker, HOST:PORT."
    ),
    topic: str = typer.Option("owntracks/#", "--topic", help="The MQTT topic filter."),
    jt808_port: int | None = typer.Option(
        None, "--jt808-port", help="Listen for JT/T 808 vehicle terminals on this port."
    ),
) -> None:
    """Run the stream receivers (the HTTP ones are part of ``spatial serve``) until stopped."""

    from spatial.gps.jt808_tcp import serve_jt808  # noqa: PLC0415 - keep `spatial --help` fast
    from spatial.gps.mqtt import follow_owntracks  # noqa: PLC0415 - keep `spatial --help` fast
    from spatial.gps.tcp import serve_nmea  # noqa: PLC0415 - keep `spatial --help` fast

    if nmea_port is None and mqtt is None and jt808_port is None:
        raise InvalidInputError("give --nmea-port, --jt808-port and/or --mqtt HOST:PORT")
    settings = Settings()
    url = resolve_url(settings)
    jobs = []
    if nmea_port is not None:
        jobs.append(serve_nmea(host, nmea_port, url=url, settings=settings.gps))
        console.print(f"NMEA over TCP on {host}:{nmea_port}")
    if jt808_port is not None:
        secret = settings.secret_key.get_secret_value()
        jobs.append(serve_jt808(host, jt808_port, url=url, settings=settings.gps, secret=secret))
        console.print(f"JT/T 808 over TCP on {host}:{jt808_port}")
    if mqtt is not None:
        broker, _, port = mqtt.rpartition(":")
        if not broker or not port.isdigit():
            raise InvalidInputError(f"--mqtt {mqtt!r}: give HOST:PORT, e.g. localhost:1883")
        jobs.append(follow_owntracks(broker, int(port), url=url, settings=settings.gps,
                                     topic=topic))  # fmt: skip
        console.print(f"OwnTracks from mqtt://{mqtt} ({topic})")

    async def run() -> None:
        await asyncio.gather(*jobs)

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        console.print("stopped")
