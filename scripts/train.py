"""Train an encoder-forecaster: python scripts/train.py [experiment=quickstart] [model=convgru3] [key=value ...]
The clone's alias of `convgru train` (convgru.commands; see --help)."""

from functools import partial

from convgru.commands import run

main = partial(run, "train")  # main(argv=None): `convgru train` (named scripts/train.py on the command line)

if __name__ == "__main__":
    main()
