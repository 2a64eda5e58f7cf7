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

# Digests leave within seconds of their due time; the same run re-sends work a crash left pending.
periodic("notify.schedule_digests", every="5s", expires_s=15)

# Spike rules read the rollups once a minute.
periodic("notify.spike_alert", every="1m", expires_s=90)

# Cron monitors: missed and failed check-ins become issues within a minute.
periodic("monitors.check", every="1m", expires_s=90)

# Weekly reports, Monday 09:00 UTC; after downtime one run catches up.
periodic("reports.prepare_weekly", cron="0 9 * * 1", expires_s=12 * 3600, catch_up="once")
