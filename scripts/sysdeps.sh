#!/usr/bin/env bash
# Install the system packages the platform needs, or say exactly what is missing.
# Fast and silent when everything is present (it only tests for files).
set -euo pipefail

missing=()
pg_bin=""
for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
  if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then pg_bin="$d"; break; fi
done
pg_ver=""
if [ -n "$pg_bin" ]; then
  pg_ver=$(basename "$(dirname "$pg_bin")")
  [ -f "/usr/share/postgresql/$pg_ver/extension/postgis.control" ] || missing+=("postgresql-$pg_ver-postgis-3")
  [ -f "/usr/share/postgresql/$pg_ver/extension/postgis_raster.control" ] || missing+=("postgresql-$pg_ver-postgis-3")
  # Road networks and routing (spatial network, the route processes, dispatch).
  [ -f "/usr/share/postgresql/$pg_ver/extension/pgrouting.control" ] || missing+=("postgresql-$pg_ver-pgrouting")
else
  missing+=("postgresql" "postgresql-postgis")  # and its pgRouting, once the version is known
fi
command -v psql >/dev/null || missing+=("postgresql-client")
command -v ogr2ogr >/dev/null || missing+=("gdal-bin")
python3 -c "import ensurepip, venv" 2>/dev/null || missing+=("python3-venv")
# npm fetches the web pages' packages at install time; Chromium runs the browser tests.
command -v npm >/dev/null || missing+=("npm")
command -v chromium >/dev/null || missing+=("chromium")
command -v chromedriver >/dev/null || missing+=("chromium-driver")
# A Chinese font, so the maps' labels and the test screenshots show Hanzi, not boxes.
[ -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || missing+=("fonts-wqy-microhei")
# The MQTT broker the OwnTracks subscriber's tests start on a port of their own.
[ -x /usr/sbin/mosquitto ] || missing+=("mosquitto")
# QGIS, the desktop client the tests load the platform's services in (Debian's own python3).
/usr/bin/python3 -c "import qgis.core" 2>/dev/null || missing+=("python3-qgis" "qgis-providers")
# The load generator of the benchmarks (benchmarks/README.md), so each runs after `make demo`.
command -v wrk >/dev/null || missing+=("wrk")

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
# de-duplicate
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

if [ "$(id -u)" -ne 0 ]; then
  echo "The platform needs these Debian/Ubuntu packages: ${missing[*]}" >&2
  echo "Install them once with:" >&2
  echo "    sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  echo "(or set SPATIAL_DATABASE_URL to an existing PostGIS server and install gdal-bin)." >&2
  exit 1
fi

echo "Installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
if printf '%s\n' "${missing[@]}" | grep -qx postgresql-postgis; then
  # Learn the server version first, then take its PostGIS build.
  apt-get install -y -qq postgresql postgresql-client >/dev/null
  pg_ver=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | grep -vx -e postgresql -e postgresql-postgis; echo "postgresql-$pg_ver-postgis-3"; echo "postgresql-$pg_ver-pgrouting")
fi
apt-get install -y -qq "${missing[@]}" >/dev/null
# The Debian packages start their own cluster on 5432 (and broker on 1883, where systemd
# runs); the platform never uses them.
echo "System packages installed."
