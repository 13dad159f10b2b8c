"""DDP through trainer=ddp with Hydra's output directories: two CPU processes (gloo) on one node, and two
"nodes" of one process each on 127.0.0.1 (trainer=ddp_multinode) that train as those two processes do; the
validation and test scores of 2 processes (train.py's test, eval.py) equal one process's on the same sets of
5 sequences, which Lightning's sampler pads to 6 (tests/test_ddp_metrics.py: world sizes 1 to 7 in one process)."""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, compose_config, tiny
from convgru.training import evaluate

TESTS = ROOT / "tests"


def command(cache_dir, run, trainer: list[str]) -> list[str]:
    """train.py on the tiny config with 16 training sequences (batch 4 over 2 processes: 2 steps) and 5
    validation and test sequences, every rank writing its weights (rank_weights.RankWeights) to <run>/ranks."""
    overrides = [o for o in tiny("train") if not o.startswith("trainer=")]
    return [sys.executable, "scripts/train.py", *overrides, "data.train_size=16", "data.val_size=5",
            "data.test_size=5", *trainer,
            "trainer.accelerator=cpu", "trainer.precision=32-true", "trainer.max_epochs=1",
            "+callbacks.rank_weights._target_=rank_weights.RankWeights", f"+callbacks.rank_weights.folder={run}/ranks",
            f"paths.cache_dir={cache_dir}", f"hydra.run.dir={run}"]


def environment(**variables) -> dict:
    """One thread per process in both layouts (Lightning would give the processes of a node the node's cores
    between them: 1 each for two processes, 2 for one), so that the convolutions sum in the same order."""
    return {**os.environ, "PYTHONPATH": str(TESTS), "OMP_NUM_THREADS": "1", **variables}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ranks(run) -> list[dict]:
    return [torch.load(run / "ranks" / f"rank{r}.pt", weights_only=True) for r in (0, 1)]


@pytest.fixture(scope="module")
def one_node(tmp_path_factory, cache_dir):
    """trainer=ddp, 2 CPU processes on one node: (run folder, output)."""
    run = tmp_path_factory.mktemp("ddp") / "run"
    result = subprocess.run(command(cache_dir, run, ["trainer=ddp", "trainer.devices=2"]), cwd=ROOT,
                            capture_output=True, text=True, timeout=300, env=environment())
    assert result.returncode == 0, result.stderr[-4000:]
    return run, result.stdout + result.stderr


@pytest.mark.slow
def test_ddp_two_cpu_processes(one_node):
    run, output = one_node
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in output
    assert "distributed_backend=gloo" in output
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 2  # 16 training sequences, batch 4, split over 2 processes
    assert sorted(p.name for p in run.iterdir() if p.is_dir()) == [".hydra", "checkpoints", "ranks", "tensorboard"]
    assert output.count("Checkpoints:") == 1


@pytest.mark.slow
def test_two_nodes_train_as_one_node_with_two_processes(tmp_path, cache_dir, one_node):
    """NODE_RANK 0 and 1 on 127.0.0.1, one process each (Lightning's variables for a cluster it does not
    know): one training of world size 2, the same weights on both ranks, the metrics and weights of one
    node with two processes on the same data and seed."""
    run, port = tmp_path / "run", free_port()
    nodes = [subprocess.Popen(command(cache_dir, run, ["trainer=ddp_multinode", "trainer.num_nodes=2",
                                                      "trainer.devices=1"]),
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=environment(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), NODE_RANK=str(rank)))
             for rank in (0, 1)]
    try:
        outputs = [node.communicate(timeout=300)[0] for node in nodes]
    finally:
        for node in nodes:
            node.kill()
    assert [node.returncode for node in nodes] == [0, 0], "\n\n".join(o[-3000:] for o in outputs)
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in outputs[0] and "GLOBAL_RANK: 1, MEMBER: 2/2" in outputs[1]
    assert "Checkpoints:" in outputs[0] and "Checkpoints:" not in outputs[1]  # rank 0 reports
    first, second = ranks(run)
    assert first["world_size"] == second["world_size"] == 2
    assert first["global_step"] == second["global_step"] == 2
    for name, value in first["state_dict"].items():
        torch.testing.assert_close(second["state_dict"][name], value, rtol=0, atol=0, msg=name)
    reference = ranks(one_node[0])[0]
    for name, value in reference["state_dict"].items():
        torch.testing.assert_close(first["state_dict"][name], value, rtol=1e-6, atol=1e-7, msg=name)
    metrics, expected = (json.loads((r / "metrics.json").read_text()) for r in (run, one_node[0]))
    assert metrics.keys() == expected.keys() and "test/mse" in metrics
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value, rel=1e-5, abs=1e-7), name


def one_process_eval(checkpoint, out, cache_dir) -> dict:
    """eval.py's evaluate() on one process (in-process) with the checkpoint's data: its metrics.json."""
    overrides = [f"ckpt_path={checkpoint}", "trainer.precision=32-true"]
    evaluate(compose_config("eval", out, overrides, cache_dir), overrides)
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.slow
def test_two_processes_score_as_one(tmp_path, cache_dir, one_node):
    """train.py's test and eval.py under trainer=ddp on 2 processes: the metrics of one process on the same 5
    test sequences (not 6: Lightning's sampler repeats one to give both processes 3)."""
    run, _ = one_node
    best = run / "checkpoints" / "epoch_000.ckpt"  # what train.py tested
    expected = one_process_eval(best, tmp_path / "one", cache_dir)
    trained = json.loads((run / "metrics.json").read_text())
    for name in ("mse", "mae", "ssim", "psnr"):
        assert trained[f"test/{name}"] == pytest.approx(expected[name], rel=1e-5), name
    command = [sys.executable, "scripts/eval.py", f"ckpt_path={best}", "trainer=ddp", "trainer.accelerator=cpu",
               "trainer.devices=2", "trainer.precision=32-true", f"paths.cache_dir={cache_dir}",
               f"hydra.run.dir={tmp_path / 'two'}"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, env=environment())
    assert result.returncode == 0, result.stderr[-4000:]
    output = result.stdout + result.stderr
    assert "MEMBER: 2/2" in output and "DistributedSampler" not in output  # Lightning's advice: not needed now
    scored = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert scored.keys() == expected.keys()
    for name, value in expected.items():
        if name != "ckpt_path":
            assert scored[name] == pytest.approx(value, rel=1e-5, abs=1e-7, nan_ok=True), name
    one, two = ((tmp_path / f / "per_frame.csv").read_text().splitlines() for f in ("one", "two"))
    assert len(two) == len(one) == 3  # a header and frames_out=2 rows
    for a, b in zip(one[1:], two[1:]):
        assert [float(v) for v in a.split(",")] == pytest.approx([float(v) for v in b.split(",")], rel=1e-4)
