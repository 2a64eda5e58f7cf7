"""eventpipe.pipeline."""
