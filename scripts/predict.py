"""Forecast with a trained checkpoint: python scripts/predict.py CKPT INPUT OUTPUT [options] (see --help)."""

from convgru.deploy.predict import main

if __name__ == "__main__":
    main()
