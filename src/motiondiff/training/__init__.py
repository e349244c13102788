"""Training: the LightningModules, building them from configs, config checks, callbacks and checkpoint IO."""
