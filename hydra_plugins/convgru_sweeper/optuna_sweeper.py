"""hydra-optuna-sweeper's OptunaSweeper (the same options) with every trial in the sweep's summary and an
all-failed sweep ended in one `error:` line: `convgru.training.sweeps`. hparams_search=optuna names it.
Optuna and hydra-optuna-sweeper (the sweep extra) are imported only when a sweep uses it, so that Hydra's
scan of its plugins works without them."""

from hydra.plugins.sweeper import Sweeper


class OptunaSweeper(Sweeper):
    def __init__(self, **options) -> None:
        from convgru.training.sweeps import SummarizedOptunaSweeper

        self.sweeper = SummarizedOptunaSweeper(**options)

    def setup(self, *, hydra_context, task_function, config) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments):
        return self.sweeper.sweep(arguments)
