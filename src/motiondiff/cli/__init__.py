"""The commands: one thin module per command, each a Hydra entry point around a plain `run(cfg)` of the library."""
