"""``torchrun`` target of test_training_ddp: ``python -m medvqa.training.train`` that also records, per rank,
which checkpoint writers it called (in ``$MEDVQA_WRITES_DIR/writes.{rank}.txt``)."""

import os
from pathlib import Path

from medvqa.models import checkpoint
from medvqa.training import train


def recording(name, function):
    def wrapper(*args, **kwargs):
        path = Path(os.environ["MEDVQA_WRITES_DIR"]) / f"writes.{os.environ['RANK']}.txt"
        with path.open("a") as log:
            log.write(f"{name}\n")
        return function(*args, **kwargs)

    return wrapper


for name in ("save_progress", "finalise", "write_zero_shot", "save_weights"):
    setattr(checkpoint, name, recording(name, getattr(checkpoint, name)))

if __name__ == "__main__":
    train.main()
