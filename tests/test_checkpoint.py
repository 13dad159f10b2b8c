"""Checkpoints load safely or fail clearly: corrupt, truncated, malicious, foreign and newer-format files
are refused with a message; convgru.load gives the trained module."""

import pickle
import zipfile

import pytest
import torch

import convgru
from convgru.training import CheckpointError, load_checkpoint

RAN = []


class Exploit:
    """A pickled object whose loading would run code (appends to RAN)."""

    def __reduce__(self):
        return RAN.append, ("exploit ran",)

@pytest.mark.parametrize("content,why", [(b"", "the file is empty"),
                                         (b"not a checkpoint at all", "it is not a PyTorch checkpoint"),
                                         # read as pickle opcodes: a memo lookup (KeyError), an empty stack
                                         # (IndexError), a short integer (struct.error), odd text bytes
                                         (b"hi\n", "it is not a PyTorch checkpoint"),
                                         (b"K", "it is not a PyTorch checkpoint"),
                                         (b"GIF89a", "it is not a PyTorch checkpoint"),
                                         (b"U\xdcb\xb7: \x0e\xe7g<\xfe", "it is not a PyTorch checkpoint"),
                                         (b"PK\x03\x04truncated zip", "the file is truncated or damaged")])
def test_corrupt_checkpoint_is_reported(tmp_path, content, why):
    path = tmp_path / "corrupt.ckpt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=f"cannot read checkpoint .*corrupt.ckpt: {why}"):
        load_checkpoint(path)

def test_truncated_real_checkpoint_is_reported(trained_run, tmp_path):
    data = (trained_run[0] / "checkpoints" / "last.ckpt").read_bytes()
    path = tmp_path / "truncated.ckpt"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or damaged"):
        load_checkpoint(path)

def test_malicious_checkpoint_is_refused_without_running_code(tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"net": {}}, "payload": Exploit()}, path)
    assert zipfile.is_zipfile(path)
    with pytest.raises(CheckpointError, match="refused to load .*could run code"):
        load_checkpoint(path)
    legacy = tmp_path / "evil_legacy.ckpt"
    legacy.write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(CheckpointError):
        load_checkpoint(legacy)
    assert RAN == []

def test_other_files_are_not_checkpoints(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not a Lightning training checkpoint"):
        load_checkpoint(path)

def test_checkpoint_from_a_newer_convgru_is_refused(trained_run, tmp_path):
    checkpoint = torch.load(trained_run[0] / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["convgru"] == {"format": 2, "version": convgru.__version__, "world_size": 1}
    checkpoint["convgru"] = {"format": 99, "version": "9.0"}
    torch.save(checkpoint, tmp_path / "future.ckpt")
    with pytest.raises(CheckpointError, match="written by convgru 9.0 in checkpoint format 99.*Upgrade convgru"):
        convgru.load(tmp_path / "future.ckpt")

def test_load_gives_the_trained_module(trained_run):
    out, _, cfg = trained_run
    module = convgru.load(out / "checkpoints" / "last.ckpt")
    assert module.hparams.data["_target_"] == "convgru.data.MovingMNISTDataModule"
    assert module.hparams.data["cache_dir"] == "${paths.cache_dir}"  # interpolations kept: portable
    x = torch.rand(3, 3, 1, 32, 32)
    pred = module.forecast(x)
    torch.testing.assert_close(pred, module.net(x, 2).clamp(0, 1))
    assert module.forecast(x, future=5).shape == (3, 5, 1, 32, 32)


def test_a_stored_data_config_resolves_the_users_interpolations_but_convgrus_paths(monkeypatch):
    """The command line's own interpolations (`data.train_size=${data.val_size}`, `${oc.env:...}`) are resolved
    before a checkpoint stores the data config, which may hold no other interpolation than `${paths.<key>}` of the
    packaged paths config (kept: portable); a checkpoint naming another paths key is refused, never resolved."""
    import yaml
    from omegaconf import OmegaConf

    from convgru.training.checkpoint import PATH_KEYS, check_plain, portable_data_config
    from convgru.training.paths import CONFIG_DIR

    assert list(PATH_KEYS) == list(yaml.safe_load((CONFIG_DIR / "paths" / "default.yaml").read_text()))
    monkeypatch.setenv("CONVGRU_TEST_UNITS", "dBZ")
    cfg = OmegaConf.create({"paths": {"output_dir": "/runs/x", "data_dir": "/d"}, "data": {
        "val_size": 4, "train_size": "${data.val_size}", "test_size": "${.val_size}",
        "cache_dir": "${paths.output_dir}/cache", "files": ["${paths.data_dir}/a.npy", "b.npy"],
        "units": "${oc.env:CONVGRU_TEST_UNITS}"}})
    stored = portable_data_config(cfg.data, cwd="/work")
    assert stored == {"val_size": 4, "train_size": 4, "test_size": 4, "cache_dir": "${paths.output_dir}/cache",
                      "files": ["${paths.data_dir}/a.npy", "/work/b.npy"], "units": "dBZ"}
    check_plain({"data": stored}, "model.ckpt", "hyper_parameters", "data")
    with pytest.raises(CheckpointError, match=r"hyper_parameters.data.files\[0\] holds the interpolation "
                                              r"'\$\{paths.nope\}/a.npy'"):
        check_plain({"data": {**stored, "files": ["${paths.nope}/a.npy"]}}, "model.ckpt", "hyper_parameters", "data")

    # a `${` in a path (typed escaped, or in a variable's value) is text: stored escaped, accepted, read back as typed
    monkeypatch.setenv("CONVGRU_TEST_DIR", "/e/${y}")
    cfg.data.files = ["/d/\\${x}/a.npy", "rel\\\\\\${z}.npy", "${oc.env:CONVGRU_TEST_DIR}/b.npy"]
    stored = portable_data_config(cfg.data, cwd="/work")
    check_plain({"data": stored}, "model.ckpt", "hyper_parameters", "data")
    read = OmegaConf.to_container(OmegaConf.create({"paths": cfg.paths, "data": stored}).data, resolve=True)
    assert read["files"] == ["/d/${x}/a.npy", "/work/rel\\${z}.npy", "/e/${y}/b.npy"]
    with pytest.raises(CheckpointError, match=r"files\[0\] holds the interpolation '\\\\\\\\\$\{oc.env:HOME\}'"):
        check_plain({"data": {**stored, "files": ["\\\\${oc.env:HOME}"]}}, "model.ckpt", "hyper_parameters", "data")
