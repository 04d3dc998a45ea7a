"""From seeds to pseudo masks: dense CRF, IR labels (confident foreground/background) and the random walk."""
