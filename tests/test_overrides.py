"""The command line is checked before Hydra runs (convgru.training.overrides): a group choice decides
what it names, or the run stops naming the experiment key that overrides it; every experiment of
convgru/conf/experiment/ is composed against every model and data option."""

from functools import lru_cache
from itertools import zip_longest

import pytest
from hydra import initialize_config_dir

from conftest import CONF
from convgru._checks import OptionError
from convgru.training import overrides


def _options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONF / group).glob("*.yaml"))


@pytest.fixture(scope="module")
def composer():
    """convgru/conf/train.yaml composed with overrides (a tuple), with its hydra node; cached."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        yield lru_cache(maxsize=None)(lambda o: overrides._compose("train", o))


def _model_net(composer, args) -> dict:
    return overrides._flat(composer(tuple(args)).model)


def test_a_model_sweep_with_an_experiment_compares_the_models(composer):
    """The issue's sweep: `-m model=convgru1,convgru2 experiment=quickstart` runs two different models."""
    overrides.check_overrides(composer, ["model=convgru1,convgru2", "experiment=quickstart"])
    one, two = (_model_net(composer, [f"model={m}", "experiment=quickstart"]) for m in ("convgru1", "convgru2"))
    assert (one["net.hidden_sizes"], two["net.hidden_sizes"]) == ([64], [64, 96])
    assert one["optimizer.lr"] == two["optimizer.lr"] == 2.0e-3  # the experiment's recipe still applies
    assert _model_net(composer, ["experiment=quickstart"])["net.hidden_sizes"] == [16, 32]


def test_an_overridden_choice_stops_naming_the_key(composer):
    with pytest.raises(OptionError, match=r"^data=radar: experiment=quickstart sets data.frames_in=5, "
                                          r"data.frames_out=5, overriding radar's 13, 12; pass data.frames_in=13 "
                                          r"data.frames_out=12 to keep"):
        overrides.check_overrides(composer, ["experiment=quickstart", "data=radar"])
    # the keys on the command line: the user decides, no conflict
    assert not overrides.conflicts(composer, ("experiment=quickstart", "data=radar", "data.frames_in=5",
                                              "data.frames_out=5"))


@pytest.mark.slow
@pytest.mark.parametrize("experiment", _options("experiment"))
def test_every_experiment_against_every_model_and_data_option(composer, experiment):
    """Every model and data option X given with the experiment is either refused, naming the experiment
    and keys where the composed config indeed lost X's value, or accepted; an accepted X keeps its own
    value at every key where it differs from another accepted option of its group, so that a sweep over
    the accepted options runs configs that differ where the options do."""
    options = {"model": _options("model"), "data": _options("data")}
    own = {(g, x): overrides._flat(composer((f"{g}={x}",))[g]) for g, xs in options.items() for x in xs}
    final, refused = {}, {}
    for model, data in zip_longest(options["model"], options["data"], fillvalue=None):
        chosen = {g: x for g, x in (("model", model), ("data", data)) if x is not None}
        combination = (f"experiment={experiment}", *(f"{g}={x}" for g, x in chosen.items()))
        messages = {str(e).split(":")[0]: str(e) for e in overrides.conflicts(composer, combination)}
        for group, option in chosen.items():
            final[group, option] = overrides._flat(composer(combination)[group])
            if f"{group}={option}" in messages:
                refused[group, option] = messages[f"{group}={option}"]
    for (group, option), message in refused.items():
        assert message.startswith(f"{group}={option}: experiment={experiment} sets {group}."), message
        named = [k for k in own[group, option] if f"{group}.{k}=" in message.split(", overriding")[0]]
        assert named and all(final[group, option].get(k) != own[group, option][k] for k in named), message
    for group, names in options.items():
        accepted = [x for x in names if (group, x) not in refused]
        assert composer((f"experiment={experiment}",)).hydra.runtime.choices[group] in accepted
        for option in accepted:
            mine = own[group, option]
            naming = [k for k, v in mine.items()
                      if any(own[group, other].get(k, overrides._ABSENT) != v for other in accepted if other != option)]
            lost = [k for k in naming if final[group, option].get(k, overrides._ABSENT) != mine[k]]
            assert not lost, f"experiment={experiment} {group}={option} silently lost {lost}"


def test_no_gpu_check_for_jobs_launched_elsewhere(composer, monkeypatch):
    """A GPU trainer is refused on a machine without a GPU, unless a launcher (SLURM's) runs the jobs elsewhere."""
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(OptionError, match="no GPU was found on this machine"):
        overrides.check_overrides(composer, ["trainer=gpu"])
    overrides.check_overrides(composer, ["trainer=gpu", "hydra/launcher=submitit_slurm"])
