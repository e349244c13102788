"""What a run shows while and after it trains: experiment trackers, samples as pictures for them, curves."""
