"""What every stage shares to run: the run folder's paths, device and threads, content fingerprints,
exact shards and one resumable per-image driver."""
