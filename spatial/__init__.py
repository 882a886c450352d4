"""The 3S platform's core library.

Settings, the database (embedded PostGIS cluster, migrations, connections), the
catalog repository, demo data and the ``spatial`` command line. Nothing here imports
FastAPI, and nothing happens at import time.
"""

__version__ = "0.1.0"
