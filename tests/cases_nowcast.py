"""Error-sweep cases of the nowcasting scores and baselines: model.baselines, FSS and pooling windows,
the synthetic radar's dynamics, and pysteps missing; collected by test_errors.py."""

import sys
from unittest import mock

from sweep import Case, config_run

RADAR = ["data=radar_small", "data.num_workers=0"]
NO_PYSTEPS = {"pysteps": None, "pysteps.motion": None, "pysteps.nowcasts": None}


def without_pysteps(run):
    """`run` on a machine where pysteps (the nowcast extra) is not installed."""
    def wrapped(folder):
        with mock.patch.dict(sys.modules, NO_PYSTEPS):
            return run(folder)
    return wrapped


CASES = [
    Case("baseline-motion-unknown", "an optical-flow method pysteps does not have",
         "data=radar_small model.baselines.extrapolation.motion=optical",
         config_run([*RADAR, "model.baselines.extrapolation.motion=optical"]),
         r"model.baselines.extrapolation.motion: expected one of pysteps' motion methods \['lucaskanade', 'darts', "
         r"'vet', 'proesmans', 'farneback'\], found 'optical'"),
    Case("baseline-option-unknown", "a misspelt option of the extrapolation baseline",
         "data=radar_small +model.baselines.extrapolation.methd=vet",
         config_run([*RADAR, "+model.baselines.extrapolation.methd=vet"]),
         r"model.baselines.extrapolation: unknown option\(s\) \['methd'\], expected some of \['motion'\]"),
    Case("baseline-unknown", "a baseline convgru does not have", "data=radar_small +model.baselines.climatology={}",
         config_run([*RADAR, "+model.baselines.climatology={}"]),
         r"model.baselines: unknown baseline\(s\) \['climatology'\], expected some of \['persistence', "
         r"'extrapolation', 'sprog', 'steps'\]"),
    Case("steps-members-zero", "a STEPS ensemble of no member", "data=radar_small +model.baselines.steps.members=0",
         config_run([*RADAR, "+model.baselines.steps.members=0"]),
         r"model.baselines.steps.members: expected an integer >= 1, found 0"),
    Case("sprog-threshold-missing", "S-PROG on data in stored pixel values without a rain threshold",
         "data=radar_small model.loss_units=pixel +model.baselines.sprog={}",
         config_run([*RADAR, "model.loss_units=pixel", "+model.baselines.sprog={}"]),
         r"model.baselines.sprog.rain_threshold: expected a rain/no-rain threshold in pixel \(values below it are "
         r"no rain\): there is no default for pixel, found null"),
    Case("baseline-without-pysteps", "the extrapolation baseline without the nowcast extra installed",
         "data=radar_small (pysteps not installed)", without_pysteps(config_run(RADAR)),
         r"model.baselines.extrapolation: the extrapolation baseline needs pysteps and OpenCV, not installed "
         r"here \(.*\); install them with pip install -e \"\.\[nowcast\]\", or leave the baseline out "
         r"\(model.baselines.extrapolation=null\)",
         exact=False),
    Case("fss-scales-decreasing", "FSS neighbourhoods out of order", "data=radar_small 'data.fss_scales=[5,1]'",
         config_run([*RADAR, "data.fss_scales=[5,1]"]),
         r"data.fss_scales: expected an increasing list of window sizes in pixels \(integers >= 1\), found \[5, 1\]"),
    Case("csi-pool-size-zero", "a max-pooling window of 0 pixels", "data=radar_small 'data.csi_pool_sizes=[0,4]'",
         config_run([*RADAR, "data.csi_pool_sizes=[0,4]"]),
         r"data.csi_pool_sizes: expected an increasing list of window sizes in pixels \(integers >= 1\), "
         r"found \[0, 4\]"),
    Case("synthetic-dynamics-unknown", "synthetic radar dynamics that do not exist",
         "data=radar_small data.synthetic.dynamics=chaotic",
         config_run([*RADAR, "data.synthetic.dynamics=chaotic"]),
         r"data.synthetic.dynamics: expected one of \['linear', 'evolving'\], found 'chaotic'"),
]
