"""A long distillation run that survives being stopped: checkpoint, stop, continue.

Run it, press Ctrl-C while the bar moves, and run it again: the second run
continues from the last saved step (every 25 here) and ends with the same set
an uninterrupted run gives. Run it once more and it returns at once (the
checkpoint says the run is finished); raise STEPS and it goes on from there.

Run: .venv/bin/python examples/resume_distillation.py
"""

import sys

from condense import condense, evaluate, load_dataset

STEPS = 400
CHECKPOINT = "digits_idm_ipc1.ckpt.npz"
train, test = load_dataset("digits")
try:
    syn = condense(train, method="idm", ipc=1, steps=STEPS, seed=0, batch_real=64,
                   checkpoint=CHECKPOINT, checkpoint_every=25)
except KeyboardInterrupt:
    sys.exit(f"\nstopped; run again to continue from the last step saved in {CHECKPOINT}")
resumed = syn.meta.get("resumed")
print(f"{STEPS} steps" + (f", continued from step {resumed['from_step']}" if resumed else ", in one go")
      + f"; {syn.meta['seconds']:.0f} s of condensation in all")
print(f"idm ipc 1: {evaluate(syn, test, models=2, epochs=100)}")
