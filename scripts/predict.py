"""Forecast with a trained checkpoint: python scripts/predict.py CKPT INPUT OUTPUT [options] (see --help).
The clone's alias of `convgru predict` (convgru.commands)."""

from functools import partial

from convgru.commands import run

main = partial(run, "predict")  # main(argv=None): `convgru predict` (named scripts/predict.py on the command line)

if __name__ == "__main__":
    main()
