"""NMEA 0183: sentences from a GNSS receiver merged into one fix per epoch.

A receiver reports each epoch (usually each second) in several sentences that share its
UTC time of day: ``GGA`` (position, fix quality, satellites, HDOP, altitude), ``RMC``
(date, status, position, speed over ground in knots, course), ``VTG`` (course, speed),
``GSA`` (fix mode and dilutions), ``GLL`` and ``GNS`` (position) and ``ZDA`` (date).
:class:`Decoder` keeps the sentences of the current epoch and emits one :class:`Fix`
when a sentence with another time arrives, or when :meth:`Decoder.flush` ends the
stream; :func:`decode` does both for a finite input.

Decisions, in brief:

* Any two-letter talker is accepted (``GP``, ``GN``, ``GL``, ``GA``, ``BD``, ``GB``,
  ...); the talker of the sentence that gave the position is kept in
  ``Fix.attributes["talker"]``, since it is sometimes all that tells two devices apart,
  and the epoch's sentences in ``attributes["sentences"]`` (e.g. ``("BDRMC", "GBGGA")``).
  Other attributes when present: ``quality`` (GGA), ``fix_mode``, ``pdop``, ``vdop``
  (GSA), ``geoid_separation`` (GGA), ``mode`` (the RMC mode indicator).
* A checksum ``*hh`` is verified when present (wrong: reject ``checksum``). Without
  one, nothing shows that the line arrived whole, so the sentence must have all the
  fields of its type or it is rejected as ``malformed`` (truncated).
* Valid sentences of other types (``GSV``, ``TXT``, proprietary ``$P...``, AIS
  ``!AIVDM``) are counted in :attr:`Decoder.lines` as ignored, not rejected: they are
  correct input that carries no position of the device.
* An epoch in which the receiver says it has no fix (``RMC`` status ``V`` or mode
  ``N``, ``GGA`` quality 0, ``GLL`` status ``V``, ``GNS`` all modes ``N``) becomes one
  ``no_fix`` reject, whatever its other sentences say.
* The date comes from ``RMC`` or ``ZDA``. An epoch without one takes the last known
  date (``start_date`` at first), moved one day on when the time of day wrapped past
  midnight; with no date at all it is rejected as ``no_time``.
* Within an epoch, each value is taken from the most specific sentence that has it
  (speed: RMC before VTG; HDOP: GGA before GNS before GSA); between equals the first
  wins. Position checks (0, 0), jumps are validation's job, not the decoder's; a latitude
  beyond 90 or a longitude beyond 180 degrees is not ``ddmm.mmmm`` and is ``malformed``.
* An epoch is emitted when the next one starts, so a live stream's fix arrives one
  epoch late (or at :meth:`Decoder.flush`).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from spatial.gps.fix import Decoded, Fix, Reject

__all__ = ["KNOTS", "Decoder", "decode"]

KNOTS = 1852.0 / 3600.0
"""Metres per second in one knot (one nautical mile, 1852 m, per hour)."""

_DAY = dt.timedelta(days=1)
_HALF_DAY_S = 43200.0
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)")
_ANGLE = re.compile(r"(\d*?)(\d{1,2}(?:\.\d*)?)")
_TIME = re.compile(r"(\d\d)(\d\d)(\d\d)(?:\.(\d*))?")
_DATE = re.compile(r"(\d\d)(\d\d)(\d\d)")
_ADDRESS = re.compile(r"[A-Z]{2}[A-Z0-9]{3}")  # R00 (route waypoints) has digits
_PROPRIETARY = re.compile(r"P[A-Z0-9]+")
_HEX2 = re.compile(r"[0-9A-Fa-f]{2}")


class _MalformedError(ValueError):
    """A field that does not parse (turned into a ``malformed`` reject, never raised out)."""


# -- fields ---------------------------------------------------------------------------


def _number(text: str, what: str) -> float | None:
    """A decimal number, or None for an empty field (``float`` would also take nan/inf)."""
    if not text:
        return None
    if not _NUMBER.fullmatch(text) or not math.isfinite(value := float(text)):
        raise _MalformedError(f"{what} {text!r} is not a number")
    return value


def _integer(text: str, what: str) -> int | None:
    if not text:
        return None
    if not text.isdigit() or not text.isascii():
        raise _MalformedError(f"{what} {text!r} is not an integer")
    return int(text)


def _angle(value: str, hemisphere: str, what: str) -> float | None:
    """``ddmm.mmmm`` / ``dddmm.mmmm`` with its hemisphere letter, in signed degrees."""
    if not value and not hemisphere:
        return None
    match = _ANGLE.fullmatch(value)
    negative = {"N": False, "E": False, "S": True, "W": True}.get(hemisphere)
    valid_letter = hemisphere in ("NS" if what == "latitude" else "EW")
    if match is None or negative is None or not valid_letter:
        raise _MalformedError(f"{what} {value!r},{hemisphere!r} is not ddmm.mmmm,H")
    minutes = float(match.group(2))
    if minutes >= 60.0:
        raise _MalformedError(f"{what} {value!r} has {minutes} minutes")
    degrees = int(match.group(1) or 0) + minutes / 60.0
    if degrees > (90.0 if what == "latitude" else 180.0):
        raise _MalformedError(f"{what} {value[:40]!r},{hemisphere} is off the globe")
    return -degrees if negative else degrees


def _time(text: str) -> dt.time | None:
    """``hhmmss[.sss]`` as a time of day (fractions beyond microseconds are dropped)."""
    if not text:
        return None
    match = _TIME.fullmatch(text)
    if match is None:
        raise _MalformedError(f"time {text!r} is not hhmmss.ss")
    hh, mm, ss, fraction = match.groups()
    micro = int((fraction or "").ljust(6, "0")[:6])
    try:
        return dt.time(int(hh), int(mm), int(ss), micro)
    except ValueError as exc:  # 25h, 61 min, leap second 60: not a time we can store
        raise _MalformedError(f"time {text!r}: {exc}") from None


def _year(two_digits: int) -> int:
    """NMEA two-digit years: 80-99 are 1980-1999 (GPS began in 1980), the rest 20xx."""
    return 1900 + two_digits if two_digits >= 80 else 2000 + two_digits


def _ddmmyy(text: str) -> dt.date | None:
    if not text:
        return None
    match = _DATE.fullmatch(text)
    if match is None:
        raise _MalformedError(f"date {text!r} is not ddmmyy")
    day, month, year = (int(g) for g in match.groups())
    try:
        return dt.date(_year(year), month, day)
    except ValueError as exc:
        raise _MalformedError(f"date {text!r}: {exc}") from None


# -- sentences ------------------------------------------------------------------------


def _at(fields: list[str], index: int) -> str:
    """An optional trailing field (added by a later NMEA version), or ``""``."""
    return fields[index] if index < len(fields) else ""


@dataclass
class _Report:
    """What one sentence says about its epoch."""

    timed: bool
    """The sentence type carries a time of day (even if this one left it empty)."""
    tod: dt.time | None = None
    fix: bool | None = None
    """True: claims a fix; False: says there is none; None: says nothing about it."""
    claim: str = ""
    """How it said so (for the detail of a ``no_fix`` reject)."""
    date: dt.date | None = None
    values: dict[str, Any] = field(default_factory=dict)


def _position(report: _Report, f: list[str], lat: int, kind: str) -> None:
    """Store lat/lon from fields ``lat..lat+3``; a sentence that claims a fix needs them."""
    latitude = _angle(f[lat], f[lat + 1], "latitude")
    longitude = _angle(f[lat + 2], f[lat + 3], "longitude")
    if latitude is None or longitude is None:
        raise _MalformedError(f"{kind} claims a fix but has no position")
    report.values["lat"], report.values["lon"] = latitude, longitude


def _rmc(f: list[str]) -> _Report:
    # time, status, lat, N/S, lon, E/W, knots, course, date, magvar, E/W, [mode, [nav]]
    report = _Report(timed=True, tod=_time(f[0]), date=_ddmmyy(f[8]))
    status, mode = f[1], _at(f, 11)
    if status not in ("A", "V"):
        raise _MalformedError(f"RMC status {status!r} is not A or V")
    if status == "V" or mode == "N":
        report.fix, report.claim = False, f"RMC status {status}" + (" mode N" * (mode == "N"))
        return report
    report.fix = True
    _position(report, f, 2, "RMC")
    knots = _number(f[6], "RMC speed")
    report.values["speed"] = None if knots is None else knots * KNOTS
    report.values["course"] = _number(f[7], "RMC course")
    if mode:
        report.values["mode"] = mode
    return report


def _gga(f: list[str]) -> _Report:
    # time, lat, N/S, lon, E/W, quality, satellites, hdop, altitude, M, separation, M, ...
    report = _Report(timed=True, tod=_time(f[0]))
    quality = _integer(f[5], "GGA quality")
    if not quality:  # 0 or empty: no fix
        report.fix, report.claim = False, "GGA quality 0"
        return report
    report.fix = True
    _position(report, f, 1, "GGA")
    report.values.update(
        quality=quality,
        satellites=_integer(f[6], "GGA satellites"),
        hdop=_number(f[7], "GGA hdop"),
        altitude=_number(f[8], "GGA altitude"),
        geoid_separation=_number(_at(f, 10), "GGA geoid separation"),
    )
    return report


def _gll(f: list[str]) -> _Report:
    # lat, N/S, lon, E/W, [time, status, [mode]]; NMEA 1.5 stops after the position
    report = _Report(timed=True, tod=_time(_at(f, 4)))
    status, mode = _at(f, 5), _at(f, 6)
    if status == "V" or mode == "N":
        report.fix, report.claim = False, f"GLL status {status}" + (" mode N" * (mode == "N"))
    elif status == "A" and report.tod is not None:
        report.fix = True
        _position(report, f, 0, "GLL")
    # without time and status the position could be any age: it says nothing
    return report


def _gns(f: list[str]) -> _Report:
    # time, lat, N/S, lon, E/W, mode per constellation, satellites, hdop, altitude, sep, ...
    report = _Report(timed=True, tod=_time(f[0]))
    modes = f[5]
    if not modes or set(modes) == {"N"}:
        report.fix, report.claim = False, f"GNS mode {modes or 'empty'}"
        return report
    report.fix = True
    _position(report, f, 1, "GNS")
    report.values.update(
        satellites=_integer(f[6], "GNS satellites"),
        hdop=_number(f[7], "GNS hdop"),
        altitude=_number(f[8], "GNS altitude"),
    )
    return report


def _vtg(f: list[str]) -> _Report:
    # course T, T, course M, M, knots, N, km/h, K, [mode]; NMEA 1.5 omits the unit letters
    report = _Report(timed=False)
    if f[1] == "T":
        course, knots, kmh = f[0], _at(f, 4), _at(f, 6)
        mode = _at(f, 8)
    else:
        course, knots, kmh, mode = f[0], f[2], f[3], ""
    if mode == "N":
        return report  # "data not valid": no speed, no course
    report.values["course"] = _number(course, "VTG course")
    speed = _number(knots, "VTG speed")
    if speed is not None:
        report.values["speed"] = speed * KNOTS
    elif (per_hour := _number(kmh, "VTG speed")) is not None:
        report.values["speed"] = per_hour / 3.6
    return report


def _gsa(f: list[str]) -> _Report:
    # selection mode, fix mode (1 none, 2 2D, 3 3D), 12 satellite ids, pdop, hdop, vdop
    report = _Report(timed=False)
    mode = _integer(f[1], "GSA fix mode")
    if mode is not None:
        report.values["fix_mode"] = mode
    if len(f) >= 17:
        report.values.update(
            pdop=_number(f[14], "GSA pdop"),
            hdop=_number(f[15], "GSA hdop"),
            vdop=_number(f[16], "GSA vdop"),
        )
    return report


def _zda(f: list[str]) -> _Report:
    # time, day, month, year (four digits), zone hours, zone minutes
    report = _Report(timed=True, tod=_time(f[0]))
    day, month, year = (_integer(v, "ZDA date") for v in f[1:4])
    if day is not None and month is not None and year is not None:
        try:
            report.date = dt.date(year, month, day)
        except (ValueError, OverflowError) as exc:  # 31/2, or a month of 40 digits
            raise _MalformedError(f"ZDA date: {exc}") from None
    return report


@dataclass(frozen=True)
class _Kind:
    parse: Callable[[list[str]], _Report]
    needed: int
    """Fields (after the address) a sentence with a checksum must have."""
    complete: int
    """Fields a sentence without a checksum must have: it may have been cut short."""
    rank: int
    """Precedence of its values within an epoch (higher wins; equal: the first)."""


_KINDS: dict[str, _Kind] = {
    "RMC": _Kind(_rmc, 9, 11, 3),
    "GGA": _Kind(_gga, 9, 14, 3),
    "GNS": _Kind(_gns, 9, 12, 2),
    "GLL": _Kind(_gll, 4, 6, 1),
    "VTG": _Kind(_vtg, 4, 8, 1),
    "GSA": _Kind(_gsa, 2, 17, 0),
    "ZDA": _Kind(_zda, 4, 6, 3),
}


# -- epochs ---------------------------------------------------------------------------


@dataclass
class _Epoch:
    """The sentences of one time of day, merged."""

    tod: dt.time | None
    line: int
    date: dt.date | None = None
    values: dict[str, tuple[Any, int]] = field(default_factory=dict)
    no_fix: dict[str, None] = field(default_factory=dict)
    """How its sentences said there is no fix (a set that keeps order)."""
    addresses: list[str] = field(default_factory=list)
    talker: str | None = None

    def add(self, address: str, report: _Report, rank: int) -> None:
        if address not in self.addresses:
            self.addresses.append(address)
        if report.date is not None and self.date is None:
            self.date = report.date
        if report.fix is False:
            self.no_fix[report.claim] = None
            return
        if "lat" in report.values and self._wins("lat", rank):
            self.talker = address[:2]
        for name, value in report.values.items():
            if value is not None and self._wins(name, rank):
                self.values[name] = (value, rank)

    def _wins(self, name: str, rank: int) -> bool:
        held = self.values.get(name)
        return held is None or rank > held[1]

    def get(self, name: str) -> Any:
        held = self.values.get(name)
        return None if held is None else held[0]


_ATTRIBUTES = ("quality", "fix_mode", "pdop", "vdop", "geoid_separation", "mode")


class Decoder:
    """Decode one NMEA stream incrementally, keeping its date and pending epoch.

    ``feed`` takes whole lines (a TCP receiver frames them, e.g. with
    ``StreamReader.readline``); a string holding several lines is split at ``\\n``, and a
    part line is decoded as what it is: a truncated sentence. One decoder per stream:
    it remembers the last date and the epoch not yet emitted.

    Attributes:
        rejects: every reject so far, in input order (see :meth:`pop_rejects`).
        lines: every line fed, counted once as ``decoded`` (a sentence used for fixes),
            ``ignored`` (a valid sentence of another type), ``blank`` or ``rejected``.
        sentences: valid sentences by type (``GGA``, ``GSV``, ...; proprietary ones by
            maker: ``PGRM``, ``PSRF``).
    """

    def __init__(self, *, device: str | None = None, start_date: dt.date | None = None):
        """Start a stream.

        Args:
            device: the device id to put on fixes and rejects, when the caller knows it.
            start_date: the UTC date of the first epochs, used until the stream gives one
                (``RMC``/``ZDA``); without it, epochs before the first date are ``no_time``.
        """
        self.device = device
        self.rejects: list[Reject] = []
        self.lines: Counter[str] = Counter()
        self.sentences: Counter[str] = Counter()
        self._line = 0
        self._date = start_date
        self._tod: dt.time | None = None
        self._epoch: _Epoch | None = None

    def feed(self, line: str | bytes) -> list[Fix]:
        """Decode one line; return the fixes of the epochs it completed (usually 0 or 1).

        Never raises on bad input: what cannot be used is appended to :attr:`rejects`.
        """
        text = line.decode("latin-1") if isinstance(line, bytes) else line
        parts = text.split("\n")
        if len(parts) > 1 and parts[-1] == "":
            parts.pop()
        fixes: list[Fix] = []
        for part in parts:
            self._line += 1
            fix = self._sentence(part)
            if fix is not None:
                fixes.append(fix)
        return fixes

    def flush(self) -> list[Fix]:
        """End of input: emit the pending epoch."""
        epoch, self._epoch = self._epoch, None
        fix = None if epoch is None else self._close(epoch)
        return [] if fix is None else [fix]

    def pop_rejects(self) -> list[Reject]:
        """Return the rejects so far and forget them (for long-lived streams)."""
        rejects, self.rejects = self.rejects, []
        return rejects

    def _reject(self, reason: str, detail: str, line: int | None = None) -> None:
        self.rejects.append(Reject(reason, detail, line or self._line, self.device))

    def _sentence(self, raw: str) -> Fix | None:
        text = raw.strip()
        if not text:
            self.lines["blank"] += 1
            return None
        report = self._report(text)
        if report is None:
            return None
        address, parsed, rank = report
        return self._merge(address, parsed, rank)

    def _report(self, text: str) -> tuple[str, _Report, int] | None:
        """Frame and parse one sentence, counting the line; None if unused or rejected."""
        framed = self._frame(text)
        if framed is None:
            self.lines["rejected"] += 1
            return None
        address, fields, checked = framed
        # proprietary: "P" + maker (PGRM, PSRF, PUBX), so that junk cannot grow the counter
        kind = address[:4] if address.startswith("P") else address[2:]
        spec = _KINDS.get(kind)
        if spec is None:
            self.sentences[kind] += 1
            self.lines["ignored"] += 1
            return None
        wanted = spec.needed if checked else spec.complete
        try:
            if len(fields) < wanted:
                state = "with" if checked else "without a checksum and"
                raise _MalformedError(f"{state} {len(fields)} of {wanted} fields")
            report = spec.parse(fields)
        except (ValueError, IndexError) as exc:  # _MalformedError, or a number too long
            self.lines["rejected"] += 1
            self._reject("malformed", f"{address}: {exc}")
            return None
        self.sentences[kind] += 1
        self.lines["decoded"] += 1
        return address, report, spec.rank

    def _frame(self, text: str) -> tuple[str, list[str], bool] | None:
        """Split ``[junk]$ADDRESS,f1,...*hh``: (address, fields, had checksum), or reject."""
        start = max(text.rfind("$"), text.rfind("!"))
        if start < 0:
            self._reject("malformed", f"not an NMEA sentence: {text[:40]!r}")
            return None
        body, _, checksum = text[start + 1 :].partition("*")
        if not body.isascii() or not body.isprintable():
            self._reject("malformed", f"not printable ASCII: {text[start : start + 40]!r}")
            return None
        if checksum and not _HEX2.fullmatch(checksum):
            self._reject("malformed", f"checksum field {checksum[:10]!r} is not two hex digits")
            return None
        if checksum:  # a bare "*" (Garmin, e.g. an empty $GPBOD) counts as no checksum
            value = 0
            for byte in body.encode("ascii"):
                value ^= byte
            if value != int(checksum, 16):
                self._reject("checksum", f"{body[:20]}... has {value:02X}, says {checksum}")
                return None
        fields = body.split(",")
        address = fields[0]
        if not (_PROPRIETARY.fullmatch(address) or _ADDRESS.fullmatch(address)):
            self._reject("malformed", f"address {address[:10]!r} is not a talker and a type")
            return None
        return address, fields[1:], bool(checksum)

    def _merge(self, address: str, report: _Report, rank: int) -> Fix | None:
        """Add a sentence to the pending epoch, closing that first if the time moved on."""
        epoch, fix = self._epoch, None
        if epoch is None or (
            report.timed
            and (
                report.tod != epoch.tod
                # two of the same sentence without a time are two epochs, not one
                or (report.tod is None and address in epoch.addresses)
            )
        ):
            if epoch is not None:
                fix = self._close(epoch)
            epoch = self._epoch = _Epoch(report.tod, self._line)
        epoch.add(address, report, rank)
        return fix

    def _close(self, epoch: _Epoch) -> Fix | None:
        """The epoch's fix, or its reject; advances the stream's date."""
        date = epoch.date
        if date is None and self._date is not None and epoch.tod is not None:
            date = self._date
            last = None if self._tod is None else _seconds(self._tod)
            wrapped = last is not None and _seconds(epoch.tod) < last - _HALF_DAY_S
            if wrapped and date < dt.date.max:
                date += _DAY  # epochs without RMC carried on past midnight
        if date is not None and epoch.tod is not None:
            self._date, self._tod = date, epoch.tod
        when = "" if epoch.tod is None else f" at {epoch.tod.isoformat()}"
        if epoch.no_fix:
            self._reject("no_fix", f"no fix{when}: {', '.join(epoch.no_fix)}", epoch.line)
            return None
        lat, lon = epoch.get("lat"), epoch.get("lon")
        if lat is None or lon is None:
            return None  # only VTG/GSA/ZDA: nothing to report
        if date is None or epoch.tod is None:
            missing = "time of day" if epoch.tod is None else "date"
            self._reject("no_time", f"fix{when} without a {missing}", epoch.line)
            return None
        attributes: dict[str, Any] = {"talker": epoch.talker, "sentences": tuple(epoch.addresses)}
        attributes.update((k, epoch.get(k)) for k in _ATTRIBUTES if epoch.get(k) is not None)
        return Fix(
            time=dt.datetime.combine(date, epoch.tod, tzinfo=dt.UTC),
            lon=lon,
            lat=lat,
            device=self.device,
            altitude=epoch.get("altitude"),
            speed=epoch.get("speed"),
            course=epoch.get("course"),
            hdop=epoch.get("hdop"),
            satellites=epoch.get("satellites"),
            attributes=attributes,
        )


def _seconds(tod: dt.time) -> float:
    return tod.hour * 3600 + tod.minute * 60 + tod.second + tod.microsecond / 1e6


def decode(
    lines: Iterable[str | bytes],
    *,
    device: str | None = None,
    start_date: dt.date | None = None,
) -> Decoded:
    """Decode a finite NMEA input (a file, a list of lines, or one string or bytes).

    Args:
        lines: the input, one sentence per line; a single ``str``/``bytes`` is split
            into lines (not iterated character by character).
        device: the device id to put on fixes and rejects.
        start_date: the UTC date of epochs before the input gives one (see :class:`Decoder`).

    Returns:
        The fixes in input order and the rejects.
    """
    if isinstance(lines, str | bytes):
        lines = [lines]
    decoder = Decoder(device=device, start_date=start_date)
    fixes: list[Fix] = []
    for line in lines:
        fixes += decoder.feed(line)
    fixes += decoder.flush()
    return Decoded(fixes=fixes, rejects=decoder.rejects)
