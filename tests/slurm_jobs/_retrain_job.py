"""A retraining job for tests/test_slurm.py: records the retrain signal it was submitted
for (``$MLOPS_RETRAIN_SIGNAL``, set by ``mlops monitor watch --on-signal``).
Usage: _retrain_job.py OUT_DIR"""

import json
import os
import sys

signal = json.loads(os.environ["MLOPS_RETRAIN_SIGNAL"])
with open(os.path.join(sys.argv[1], "retrain.json"), "w") as f:
    json.dump({"signal": signal, "job": os.environ.get("SLURM_JOB_ID")}, f)
