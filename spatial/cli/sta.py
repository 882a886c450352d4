"""``spatial sta``: SensorThings services that run beside the API."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import psycopg
import typer

from spatial import partitions
from spatial.audit import Actor
from spatial.cli.common import console, friendly
from spatial.cli.gps import parse_age
from spatial.db import resolve_url
from spatial.errors import InvalidInputError
from spatial.settings import Settings

app = typer.Typer(help="SensorThings (OGC SensorThings API 1.1).", no_args_is_help=True)

LOCAL_URL = "http://127.0.0.1:8000"
"""The public URL of self links when SPATIAL_SERVER_PUBLIC_URL is not set."""


@app.callback()
def _group() -> None:
    """SensorThings (OGC SensorThings API 1.1)."""


def broker_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``mqtt://HOST[:PORT]`` as (host, port), 1883 by default.

    Raises:
        InvalidInputError: neither.
    """
    parts = urlsplit(text if "://" in text else f"mqtt://{text}")
    try:
        port = 1883 if parts.port is None else parts.port
    except ValueError:
        port = 0
    if parts.scheme != "mqtt" or not parts.hostname or not 0 < port < 65536:
        msg = f"{text!r}: give HOST:PORT or mqtt://HOST:PORT, e.g. localhost:1883"
        raise InvalidInputError(msg)
    return parts.hostname, port


@app.command()
@friendly
def mqtt(
    broker: str | None = typer.Option(
        None, "--broker", help="The MQTT broker, HOST:PORT (default: SPATIAL_STA_MQTT_URL)."
    ),
    public_url: str | None = typer.Option(
        None,
        "--public-url",
        help="The API's URL as clients see it, for self links (default: "
        f"SPATIAL_SERVER_PUBLIC_URL, else {LOCAL_URL}).",
    ),
    client_id: str = typer.Option(
        "spatial-sta",
        "--client-id",
        help="The MQTT client id (the broker keeps its session: the same on every run).",
    ),
) -> None:
    """Run the SensorThings MQTT bridge: store the Observations published to
    v1.1/Datastreams(<id>)/Observations, publish those stored (until stopped)."""
    from spatial.sta.mqtt import bridge  # noqa: PLC0415 - keep `spatial --help` fast

    settings = Settings()
    given = broker or settings.sta.mqtt_url
    if given is None:
        raise InvalidInputError("give --broker HOST:PORT (or set SPATIAL_STA_MQTT_URL)")
    host, port = broker_address(given)
    base = (public_url or settings.server.public_url or LOCAL_URL).rstrip("/") + "/sta/v1.1"
    url = resolve_url(settings)
    console.print(f"SensorThings over MQTT on mqtt://{host}:{port}, self links under {base}",
                  highlight=False)  # fmt: skip
    try:
        asyncio.run(bridge(host, port, url=url, settings=settings.sta, base=base,
                           client_id=client_id))  # fmt: skip
    except KeyboardInterrupt:
        console.print("stopped")


@app.command()
@friendly
def retention(
    older_than: str = typer.Option(..., "--older-than", help="Age of readings to drop, e.g. 400d."),
) -> None:
    """Drop whole month partitions of readings older than the age (each datastream's latest
    reading is kept in ``sta.latest``)."""
    age = parse_age(older_than)
    with psycopg.connect(resolve_url(Settings()), autocommit=True) as conn:
        dropped = partitions.retention(
            conn, "sta", "observations", age, action="observations-retention",
            actor=Actor.local(),
        )  # fmt: skip
    console.print(
        f"dropped {len(dropped)} partition(s){': ' + ', '.join(dropped) if dropped else ''}"
    )
