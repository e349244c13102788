"""Generation from a trained model: dance windows, prompts to motions, samples after training."""
