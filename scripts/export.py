"""Export a trained checkpoint to ONNX: python scripts/export.py CKPT OUT.onnx [options] (see --help)."""

from convgru.deploy.export import main

if __name__ == "__main__":
    main()
