"""Evaluate a checkpoint on its test set: python scripts/eval.py ckpt_path=... [data.x=...]
The clone's alias of `convgru eval` (convgru.commands; see --help)."""

from functools import partial

from convgru.commands import run

main = partial(run, "eval")  # main(argv=None): `convgru eval` (named scripts/eval.py on the command line)

if __name__ == "__main__":
    main()
