"""TensorBoard as the README describes it, read back with TensorBoard's own code from the event files of a
tiny run: HPARAMS has the model settings with the validation and test metrics they produced, the scalars
explain their scale, and the val/predictions image is labelled."""

import time

import torch
from tensorboard import context
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins import base_plugin
from tensorboard.plugins.hparams import api_pb2, backend_context, list_session_groups
from tensorboard.util.grpc_util import ChannelCredsType

from convgru.training.images import rows_grid, sequence_grid


def _hparams(logdir):
    """The HPARAMS tab's data, as TensorBoard's hparams plugin computes it: (experiment, session groups)."""
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, str(logdir))
    backend = backend_context.Context(base_plugin.TBContext(logdir=str(logdir), data_provider=provider,
                                                            multiplexer=multiplexer))
    ctx = context.RequestContext()
    metadata = backend.hparams_metadata(ctx, "")
    experiment = backend.experiment_from_metadata(ctx, "", True, metadata,
                                                  backend.hparams_from_data_provider(ctx, "", 0))
    request = api_pb2.ListSessionGroupsRequest(start_index=0, slice_size=10, allowed_statuses=[
        api_pb2.STATUS_UNKNOWN, api_pb2.STATUS_SUCCESS, api_pb2.STATUS_FAILURE, api_pb2.STATUS_RUNNING])
    return experiment, list_session_groups.Handler(ctx, backend, "", request).run().session_groups


def test_hparams_tab_has_the_settings_and_their_metrics(trained_run):
    out, metrics, cfg = trained_run
    experiment, groups = _hparams(out / "tensorboard")
    names = {info.name for info in experiment.hparam_infos}
    assert {"net/hidden_sizes", "net/kernel_size", "optimizer/lr", "loss", "data/frames_in"} <= names
    assert {"val/mse", "val/ssim", "test/mse", "test/psnr"} <= {info.name.tag for info in experiment.metric_infos}
    assert experiment.hparam_infos[0].name == "Dataset"  # what the run is, first; no model= choice without Hydra
    assert not {"baselines/extrapolation/motion", "loss_units", "loss_weights", "thresholds", "value_range"} & names
    (group,) = groups
    assert group.hparams["net/hidden_sizes"].string_value == str(list(cfg.model.net.hidden_sizes))
    assert group.hparams["optimizer/lr"].number_value == cfg.model.optimizer.lr
    assert group.hparams["Dataset"].string_value == "MovingMNIST"
    values = {m.name.tag: m.value for m in group.metric_values}
    assert values["test/mse"] == metrics["test/mse"] and values["val/ssim"] == metrics["val/ssim"]


def test_scalars_explain_their_scale_and_are_logged_once(trained_run):
    out, _, _ = trained_run
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    assert "summed over the pixels" in events.SummaryMetadata("val/mse").summary_description
    assert "mean over pixels" in events.SummaryMetadata("val/loss").summary_description
    assert "dB" in events.SummaryMetadata("test/psnr").summary_description
    for tag in ("val/mse", "val/loss", "test/mse"):  # the hparams add no point to the charts
        assert len(events.Scalars(tag)) == 1, tag


def test_charts_show_the_descriptions_with_tensorboards_fast_loader(trained_run):
    """TensorBoard reads the event files with its Rust data server where tensorboard-data-server is
    installed (its default, --load_fast=auto); the descriptions reach the charts through it too."""
    from tensorboard.data import server_ingester

    out, _, _ = trained_run
    ingester = server_ingester.SubprocessServerDataIngester(
        server_ingester.get_server_binary(), str(out / "tensorboard"), reload_interval=0,
        channel_creds_type=ChannelCredsType.LOCAL)  # the server ends with this process (--die-after-stdin)
    ingester.start()
    found = {}
    for _ in range(100):  # its first load, in the background
        found = ingester.data_provider.list_scalars(context.RequestContext(), experiment_id="", plugin_name="scalars")
        if found and "test/psnr" in found[next(iter(found))]:
            break
        time.sleep(0.05)
    (tags,) = found.values()
    assert "summed over the pixels" in tags["val/mse"].description and "dB" in tags["test/psnr"].description
    assert "mean over pixels" in tags["train/loss_epoch"].description


def test_prediction_rows_are_labelled(trained_run):
    """rows_grid writes the row names and frame numbers in margins around the frames, which are kept as
    they are; TensorBoard's val/predictions image is that labelled grid."""
    x, y = torch.rand(2, 3, 1, 32, 32), torch.rand(2, 2, 1, 32, 32)
    bare = sequence_grid([seq for i in range(2) for seq in (x[i], y[i], y[i])])
    grid = rows_grid(x, y, y)
    top, left = grid.shape[1] - bare.shape[1], grid.shape[2] - bare.shape[2]
    assert top > 0 and left > 0
    torch.testing.assert_close(grid[:, top:, left:], bare, atol=1 / 255, rtol=0)
    assert grid[:, top:, :left].amax() > 0.9 and grid[:, :top, left:].amax() > 0.9  # white text
    out, _, cfg = trained_run
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    image = events.Images("val/predictions")[-1]
    frames = cfg.callbacks.prediction_images.num_sequences * 3
    assert image.height > frames * (cfg.data.image_size + 2) + 2  # the header line above the frames
