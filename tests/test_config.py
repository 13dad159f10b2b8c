"""Every config group option composes and instantiates; bad options fail with Hydra's message."""

import re
from pathlib import Path

import hydra
import numpy as np
import pytest
import pytorch_lightning as pl
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import OmegaConf

from conftest import CONF, ROOT, compose_config, tiny
from convgru.training import ForecastModule
from convgru.training.options import instantiate
from convgru.training.paths import find_project_root


def _options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONF / group).glob("*.yaml"))


def test_project_root_is_the_repository():
    assert Path(find_project_root()) == ROOT


@pytest.mark.parametrize("name", _options("model"))
def test_model_options_instantiate_plain_hparams(tmp_path, name):
    cfg = compose_config("train", tmp_path, [f"model={name}", "data.image_size=32"])
    module = hydra.utils.instantiate(cfg.model, _convert_="all")
    assert isinstance(module, ForecastModule)
    assert len(module.hparams.net["hidden_sizes"]) == int(re.search(r"\d+", name).group())  # convgru2_small: 2
    assert type(module.hparams.net["hidden_sizes"]) is list and type(module.hparams.optimizer) is dict


def test_convgru3_is_shi_et_al(tmp_path):
    net = compose_config("train", tmp_path).model.net
    assert (list(net.hidden_sizes), net.kernel_size, net.stem_channels) == ([64, 96, 96], 5, 16)


@pytest.mark.parametrize("name", _options("data"))
def test_data_options_instantiate(tmp_path, name):
    overrides = [f"data={name}"]
    if name == "arrays":  # needs the user's files: a small uint8 (N, T, H, W) array
        np.save(tmp_path / "seq.npy", np.zeros((10, 20, 32, 32), dtype=np.uint8))
        overrides += [f"data.files=[{tmp_path / 'seq.npy'}]", "data.layout=NTHW"]
    if name in ("fields", "xarray", "weatherbench"):  # needs the user's NetCDF files (opened at setup)
        overrides += [f"data.files=[{tmp_path / 'era5.nc'}]"]
    if name == "video":  # needs the user's files (read in setup)
        overrides += [f"data.files=[{tmp_path}]"]
    cfg = compose_config("train", tmp_path, overrides)
    assert isinstance(hydra.utils.instantiate(cfg.data), pl.LightningDataModule)


@pytest.mark.parametrize("name", _options("trainer"))
def test_trainer_options_compose(tmp_path, name):
    cfg = compose_config("train", tmp_path, [f"trainer={name}"])
    assert cfg.trainer._target_ == "pytorch_lightning.Trainer"
    if name == "cpu":
        assert isinstance(hydra.utils.instantiate(cfg.trainer, logger=False), pl.Trainer)
    if name in ("gpu", "ddp"):
        assert cfg.trainer.precision == "bf16-mixed"
    if name == "ddp":
        assert (cfg.trainer.strategy, cfg.trainer.num_nodes) == ("ddp", 1)


@pytest.mark.parametrize("group", ["logger", "callbacks"])
def test_logger_and_callback_options_instantiate(tmp_path, group):
    for name in _options(group):
        cfg = compose_config("train", tmp_path, [f"{group}={name}"])
        assert all(hydra.utils.instantiate(entry) for entry in cfg[group].values())


@pytest.mark.parametrize("name", _options("experiment"))
def test_experiment_options_compose(tmp_path, name):
    cfg = compose_config("train", tmp_path, [f"experiment={name}"])
    hydra.utils.instantiate(cfg.model, _convert_="all")
    assert OmegaConf.to_container(cfg, resolve=True)


@pytest.mark.parametrize("name", _options("experiment"))
def test_experiment_combines_with_any_data(tmp_path, name):
    """An experiment sets only data keys every data config has; data=... on the command line wins."""
    common = set.intersection(*(set(compose_config("train", tmp_path, [f"data={d}"]).data) for d in _options("data")))
    assert set(OmegaConf.load(CONF / "experiment" / f"{name}.yaml").get("data", {})) <= common
    np.save(tmp_path / "seq.npy", np.zeros((10, 30, 32, 32), dtype=np.uint8))  # 30: experiment=kth's 10 + 20
    overrides = [f"experiment={name}", "data=arrays", f"data.files=[{tmp_path / 'seq.npy'}]", "data.layout=NTHW"]
    cfg = compose_config("train", tmp_path, overrides)
    datamodule = instantiate(cfg.data, "data")
    datamodule.setup("fit")
    assert (datamodule.frames_in, datamodule.batch_size) == (cfg.data.frames_in, cfg.data.batch_size)


def test_eval_config_composes(tmp_path):
    cfg = compose_config("eval", tmp_path, tiny("eval", ["ckpt_path=x.ckpt"]))
    assert cfg.trainer.deterministic and cfg.ckpt_path == "x.ckpt"


def test_paths_point_into_the_repository(tmp_path):
    with hydra.initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        paths = hydra.compose("train").paths
    assert (Path(paths.root_dir), Path(paths.data_dir)) == (ROOT, ROOT / "data")
    assert Path(paths.log_dir) == ROOT / "logs"


def test_unknown_option_is_hydras_error(tmp_path):
    with pytest.raises(MissingConfigException, match="convgru9"):
        compose_config("train", tmp_path, ["model=convgru9"])
    with pytest.raises(ConfigCompositionException, match="hidden_size"):
        compose_config("train", tmp_path, ["model.net.hidden_size=[8]"])
