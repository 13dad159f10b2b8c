"""Error-sweep cases of network options that the library refuses (sizes, kernels, GroupNorm groups),
reached from the config; collected by test_errors.py. Errors of library calls that no config reaches
(dtypes, devices, empty sequences) are unit-tested in test_cell.py, test_rnn.py and test_forecaster.py."""

from sweep import Case, config_run

CASES = [
    Case("model-hidden-negative", "a negative hidden size", "model.net.hidden_sizes=[16,-32]",
         config_run(["model.net.hidden_sizes=[16,-32]"]),
         r"model.net.hidden_sizes: expected a non-empty list of ints >= 1, got \[16, -32\]"),
    Case("model-kernel-even", "an even kernel size", "model.net.kernel_size=4",
         config_run(["model.net.kernel_size=4"]),
         r"model.net.kernel_size: expected an odd int >= 1 or a pair \(kh, kw\) of them, for 'same' "
         r"padding, got 4"),
    Case("model-num-groups-zero", "no GroupNorm groups", "model.net.num_groups=0",
         config_run(["model.net.num_groups=0"]), r"model.net.num_groups: expected an int >= 1, got 0"),
    Case("model-num-groups-divisor", "GroupNorm groups that do not divide a hidden size",
         "model.net.num_groups=5", config_run(["model.net.num_groups=5"]),
         r"model.net.num_groups: expected a divisor of every entry of hidden_sizes=\[64, 96, 96\] for "
         r"norm='group', got 5"),
    Case("model-norm-eps-zero", "a GroupNorm eps of zero", "model.net.norm_eps=0",
         config_run(["model.net.norm_eps=0"]), r"model.net.norm_eps: expected a number > 0, got 0"),
    Case("model-stem-zero", "a stem with no channels", "model.net.stem_channels=0",
         config_run(["model.net.stem_channels=0"]), r"model.net.stem_channels: expected an int >= 1, got 0"),
]
