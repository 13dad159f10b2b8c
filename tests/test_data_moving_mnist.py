"""MovingMNISTDataModule end to end: shapes, per-epoch sequences, determinism with workers, disjoint digits,
cached fixed sets, the standard test file, Lightning's handling of the sampler."""

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from convgru.data import EpochKeySampler, MovingMNISTDataModule
from test_data_digits import write_idx


def module(tmp_path, **kwargs):
    options = dict(train_size=8, val_size=6, test_size=5, batch_size=4, num_workers=0, cache_dir=tmp_path / "cache")
    return MovingMNISTDataModule(**{**options, **kwargs})


def train_epoch(dm, epoch, loader=None):
    """All training sequences (N, T, 1, H, W) of `epoch`, from `loader` (reused across epochs) or a new one."""
    loader = loader or dm.train_dataloader()
    loader.sampler.set_epoch(epoch)
    return torch.cat([torch.cat([x, y], 1) for x, y in loader])


def test_batches_end_to_end(tmp_path):
    dm = module(tmp_path, frames_in=5, frames_out=3)
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("test")
    for loader, n in ((dm.train_dataloader(), 8), (dm.val_dataloader(), 6), (dm.test_dataloader(), 5)):
        x, y = next(iter(loader))
        assert x.shape == (4, 5, 1, 64, 64) and y.shape == (4, 3, 1, 64, 64)
        assert x.dtype == y.dtype == torch.float32
        assert x.min() == 0 and x.max() == 1 and 0 <= y.min() and y.max() <= 1
        assert len(loader.dataset) == n
    assert isinstance(dm.train_dataloader().sampler, EpochKeySampler)
    assert (dm.frames_in, dm.frames_out, dm.channels) == (5, 3, 1)


def test_new_sequences_each_epoch_same_with_workers(tmp_path):
    serial = module(tmp_path)
    serial.setup("fit")
    parallel = module(tmp_path, num_workers=2, persistent_workers=True)
    parallel.setup("fit")
    first, second = train_epoch(serial, 0), train_epoch(serial, 1)
    assert first.shape == (8, 20, 1, 64, 64)
    assert not torch.equal(first, second)
    loader = parallel.train_dataloader()  # persistent workers live on across epochs
    assert loader.persistent_workers and loader.num_workers == 2
    assert torch.equal(first, train_epoch(parallel, 0, loader))
    assert torch.equal(second, train_epoch(parallel, 1, loader))
    other = module(tmp_path, seed=1)
    other.setup("fit")
    assert not torch.equal(first, train_epoch(other, 0))


def test_sampler_gives_each_rank_its_own_keys():
    dataset = list(range(10))
    ranks = [EpochKeySampler(dataset, num_replicas=2, rank=r) for r in (0, 1)]
    assert len(ranks[0]) == 5 and set(ranks[0]).isdisjoint(ranks[1])
    assert sorted([*ranks[0], *ranks[1]]) == list(range(10))
    ranks[0].set_epoch(3)
    assert list(ranks[0]) == list(range(30, 40, 2))
    single = EpochKeySampler(dataset)
    assert (single.num_replicas, single.rank, list(single)) == (1, 0, list(range(10)))


def test_training_digits_never_in_val_or_test(tmp_path):
    train = write_idx(tmp_path / "train-idx3-ubyte", np.arange(10, 20, dtype=np.uint8)[:, None, None]
                      .repeat(28, 1).repeat(28, 2))
    test = write_idx(tmp_path / "test-idx3-ubyte", np.full((2, 28, 28), 250, np.uint8))
    dm = module(tmp_path, digits="idx", idx_train=train, idx_test=test, num_digits=3)
    dm.setup("fit")
    dm.setup("test")
    train_values = set(np.unique((train_epoch(dm, 0) * 255).round().numpy()).tolist())
    assert train_values <= {0.0, *range(10, 20)} and len(train_values) > 3
    for loader in (dm.val_dataloader(), dm.test_dataloader()):
        x, y = next(iter(loader))
        assert set(np.unique((torch.cat([x, y], 1) * 255).round().numpy()).tolist()) == {0.0, 250.0}


def test_fixed_sets_are_cached_and_regenerated_on_change(tmp_path):
    dm = module(tmp_path)
    dm.prepare_data()
    files = sorted((tmp_path / "cache").iterdir())
    assert [f.name.split("_")[2] for f in files] == ["test", "val"] and all(f.suffix == ".npy" for f in files)
    stamps = [f.stat().st_mtime_ns for f in files]
    again = module(tmp_path)
    again.setup("fit")
    dm.setup("fit")
    assert [f.stat().st_mtime_ns for f in files] == stamps  # reused, not rewritten
    assert torch.equal(next(iter(dm.val_dataloader()))[0], next(iter(again.val_dataloader()))[0])
    assert isinstance(again.val_set.arrays[0].file.array, np.memmap)
    module(tmp_path, num_digits=1).setup("fit")
    assert len(list((tmp_path / "cache").iterdir())) == 3  # a new val set for the new parameters
    assert not list((tmp_path / "cache").glob("*.tmp"))


def test_standard_test_file_is_used(tmp_path):
    path = tmp_path / "mnist_test_seq.npy"
    frames = np.random.default_rng(0).integers(0, 256, (20, 3, 64, 64), dtype=np.uint8)
    np.save(path, frames)
    dm = module(tmp_path, test_file=path)
    dm.setup("test")
    x, y = dm.test_set[2]
    np.testing.assert_allclose(x[:, 0].numpy(), frames[:10, 2] / 255, rtol=1e-6)
    np.testing.assert_allclose(y[:, 0].numpy(), frames[10:, 2] / 255, rtol=1e-6)
    assert len(dm.test_set) == 3
    with pytest.raises(ValueError, match="at least frames_in \\+ frames_out = 22 frames, found 20"):
        module(tmp_path, test_file=path, frames_out=12).setup("test")
    with pytest.raises(ValueError, match=r"expected \(T, N, 32, 32\) uint8"):
        module(tmp_path, test_file=path, image_size=32).setup("test")
    with pytest.raises(FileNotFoundError, match="test_file .*nothing.npy not found"):
        module(tmp_path, test_file=tmp_path / "nothing.npy").setup("test")


@pytest.mark.parametrize("kwargs, match", [
    (dict(channels=3), "channels"), (dict(num_digits=4), "num_digits"), (dict(image_size=20), "image_size"),
    (dict(train_size=0), "train_size"), (dict(batch_size=0), "batch_size"), (dict(digits="emnist"), "digits"),
])
def test_bad_options(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        module(tmp_path, **kwargs).setup("fit")


class Recorder(pl.LightningModule):
    """Tiny model that records the first training batch of every epoch."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.firsts = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        if batch_idx == 0:
            self.firsts.append(x.clone())
        return ((x.mean() + self.weight - y.mean()) ** 2)

    def validation_step(self, batch, batch_idx):
        self.log("val", batch[0].mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_lightning_keeps_sampler_and_sets_epoch(tmp_path):
    dm = module(tmp_path, image_size=32, frames_in=2, frames_out=1)
    model = Recorder()
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(model, datamodule=dm)
    assert isinstance(trainer.train_dataloader.sampler, EpochKeySampler)
    assert trainer.train_dataloader.sampler.epoch == 1
    assert len(model.firsts) == 2 and not torch.equal(*model.firsts)
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(1)
    assert torch.equal(next(iter(loader))[0], model.firsts[1])
