"""Checkpoints of convgru 0.1.0 (tests/data/convgru-0.1.0-tiny.ckpt, the tiny config) load, evaluate and
resume training: their separate r/z GroupNorms are merged, weights and optimizer state alike."""

import pytest
import torch

import convgru
from conftest import ROOT, compose_config, tiny
from convgru.training import ForecastModule, evaluate, train
from convgru.training.checkpoint import merge_rz_norm_states

OLD_CHECKPOINT = ROOT / "tests" / "data" / "convgru-0.1.0-tiny.ckpt"  # tiny config, written by convgru 0.1.0


def test_checkpoint_from_0_1_0_loads_and_evaluates(tmp_path, cache_dir):
    module = convgru.load(OLD_CHECKPOINT)
    assert isinstance(module, ForecastModule) and module.hparams.data is None
    assert "norm_eps" not in module.hparams.net and module.net.encoder[0].norm_n.eps == 1e-5  # not stored: 1e-5
    pred = module.forecast(torch.rand(2, 3, 1, 32, 32))
    assert pred.shape == (2, 2, 1, 32, 32) and 0 <= pred.min() and pred.max() <= 1
    overrides = [f"ckpt_path={OLD_CHECKPOINT}", "num_images=2", *tiny("eval")]  # 0.1.0 did not record its data
    assert evaluate(compose_config("eval", tmp_path, overrides, cache_dir), overrides)["mse"] > 0

def test_0_1_0_optimizer_state_is_merged_like_its_weights():
    checkpoint = torch.load(OLD_CHECKPOINT, weights_only=True)
    old = checkpoint["optimizer_states"][0]["state"]
    module = convgru.load(OLD_CHECKPOINT)
    merge_rz_norm_states(checkpoint, module)
    optimizer = torch.optim.Adam(module.parameters())
    optimizer.load_state_dict(checkpoint["optimizer_states"][0])
    names = [name for name, _ in module.named_parameters()]
    rz = optimizer.state[dict(module.named_parameters())["net.encoder.0.norm_rz.weight"]]["exp_avg"]
    # 0.1.0's order in the first cell: conv_x (w, b), conv_h (w, b), norm_r (w, b), norm_z (w, b), norm_n (w, b)
    first = names.index("net.encoder.0.conv_x.weight")
    torch.testing.assert_close(rz, torch.cat([old[first + 4]["exp_avg"], old[first + 6]["exp_avg"]]))

@pytest.mark.slow
def test_training_resumes_from_a_0_1_0_checkpoint(tmp_path, cache_dir):
    overrides = ["model.net.norm=group", "model.scheduler.name=none", "trainer.max_epochs=2", "test=false",
                 f"ckpt_path={OLD_CHECKPOINT}"]  # its OneCycle schedule ended with its one epoch
    train(compose_config("train", tmp_path, tiny("train", overrides), cache_dir))
    resumed = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert (resumed["epoch"], resumed["global_step"]) == (1, 4)


def test_net_options_a_0_1_0_checkpoint_lacks_are_the_library_defaults(tmp_path):
    import yaml
    from omegaconf import OmegaConf

    from conftest import CONF
    from convgru.training.checkpoint import CheckpointError
    from convgru.training.restore import check_model_config

    for path in (CONF / "model").glob("*.yaml"):  # every model config lists them, or takes convgru3's
        config = yaml.safe_load(path.read_text())
        assert "norm_eps" in config["net"] or "convgru3" in config.get("defaults", []), path
    checkpoint = torch.load(OLD_CHECKPOINT, weights_only=True)  # no num_groups, norm_eps: built with 1, 1e-5
    cfg = OmegaConf.to_container(compose_config("train", tmp_path, ["model=convgru2_small"]).model, resolve=True)
    assert (cfg["net"]["num_groups"], cfg["net"]["norm_eps"]) == (1, 1e-5)
    same = {"net": {**cfg["net"], **checkpoint["hyper_parameters"]["net"]}, "future": 2}
    check_model_config(checkpoint, same, OLD_CHECKPOINT, resume=True)
    with pytest.raises(CheckpointError, match=r"model.net.norm_eps: checkpoint 1e-05, config 1e-06\n.*"
                                              r"model.net.norm_eps=1e-05"):
        check_model_config(checkpoint, {**same, "net": {**same["net"], "norm_eps": 1e-6}}, OLD_CHECKPOINT, resume=True)
