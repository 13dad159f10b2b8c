"""Error-sweep cases of the options for long sequences and many machines (checkpointing through time);
collected by test_errors.py."""

from sweep import Case, config_run

CASES = [
    Case("model-checkpoint-every-zero", "checkpointing through time every 0 frames", "model.net.checkpoint_every=0",
         config_run(["model.net.checkpoint_every=0"]), r"model.net.checkpoint_every: expected an int >= 1, got 0"),
]
