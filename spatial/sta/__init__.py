"""OGC SensorThings API 1.1 (issue 26): query options now, the endpoint to come."""
