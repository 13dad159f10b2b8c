"""Export a trained checkpoint to ONNX: python scripts/export.py CKPT OUT.onnx [options] (see --help).
The clone's alias of `convgru export` (convgru.commands)."""

from functools import partial

from convgru.commands import run

main = partial(run, "export")  # main(argv=None): `convgru export` (named scripts/export.py on the command line)

if __name__ == "__main__":
    main()
