"""What a run says, on the terminal and in its log file.

`say` prints a line (above the progress bar when one is drawn) and logs it to the `convgru.console`
logger, which conf/hydra/default.yaml sends to the run's log file (train.log / eval.log) alone, so
the file holds what was printed without printing it twice. `RunLog` is the Hydra callback that
sends Lightning's messages and Python's warnings to that file (and the terminal) as well.
Outside the scripts (in Python, in tests) `say` only prints.
"""

import logging
import sys

from hydra.experimental.callback import Callback
from tqdm import tqdm

LOG = logging.getLogger("convgru.console")
LOG.addHandler(logging.NullHandler())  # no handler of the scripts' logging: print only, never Python's lastResort
LOG.propagate = False  # printed already: never again through the root logger's terminal handler
LIBRARIES = ("pytorch_lightning", "lightning_fabric", "lightning")  # their messages: into the run's log too


def say(text: str, level: int = logging.INFO, stream=None) -> None:
    """Print `text` on `stream` (stdout) without breaking a progress bar, and log it at `level`."""
    tqdm.write(text, file=stream or sys.stdout)
    LOG.log(level, text)


class RunLog(Callback):
    """Hydra callback: as a job starts, send Python's warnings and Lightning's messages to the root
    logger, whose handlers (conf/hydra/default.yaml) print them and write them to the run's log file."""

    def on_job_start(self, config, **kwargs) -> None:
        logging.captureWarnings(True)
        for name in LIBRARIES:
            logger = logging.getLogger(name)
            for handler in [h for h in logger.handlers if type(h) is logging.StreamHandler]:
                logger.removeHandler(handler)  # Lightning's own terminal handler: the root logger prints instead
            logger.propagate = True
