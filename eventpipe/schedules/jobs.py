"""The pipeline's periodic jobs (imported by :func:`eventpipe.schedules.spec.load_jobs`).

``expires_s`` is a little under the next firing for the frequent flush (a later flush does the same
work, so a stale one only adds load) and generous for rollups (each run recomputes a lookback
window, so a late one is still useful, but not once the next run is queued).
"""

from eventpipe.schedules.spec import periodic

# Write-behind counters folded into issues; frequent, cheap, idempotent.
periodic("buffers.flush", every="10s", expires_s=30)

# Hourly rollups five minutes past the hour (late events of the last hour have arrived by then).
periodic("rollups.hourly", cron="5 * * * *", expires_s=45 * 60, catch_up="once")

# Daily rollups a quarter past midnight UTC; after downtime run once to catch up.
periodic("rollups.daily", cron="15 0 * * *", expires_s=6 * 3600, catch_up="once")
