"""Train a T5: `python train.py` trains the built-in demo; `python train.py --help` lists every option.

The command line itself is minit5/train_cli.py (so that `pip install .` gives it too, as `minit5-train`); the
training loop is minit5/trainer.py.
"""

from minit5.train_cli import main

if __name__ == "__main__":
    main()
