"""eventpipe.schedules."""
