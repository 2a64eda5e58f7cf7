"""eventpipe.ingest."""
