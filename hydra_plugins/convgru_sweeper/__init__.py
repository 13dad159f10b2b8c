"""convgru's Hydra sweeper plugin (in the hydra_plugins namespace, where Hydra looks for sweepers)."""
